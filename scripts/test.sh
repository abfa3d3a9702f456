#!/usr/bin/env bash
# The whole test suite in one command: the platforms' Python clients that
# tests/platform_clients.rs drives (venvs under .venv-platforms/, made once from PyPI and
# cached by their pins), then every Rust test (unit tests and the end-to-end tests in
# tests/, which start their own HTTP servers and PostgreSQL). Extra arguments go to
# `cargo test`, e.g. `./scripts/test.sh --locked` or `./scripts/test.sh -- --nocapture`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/platform-clients.sh
exec cargo test --workspace "$@"
