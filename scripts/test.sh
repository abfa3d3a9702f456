#!/usr/bin/env bash
# The whole test suite in one command: the platforms' Python clients that
# tests/platform_clients.rs drives (venvs under .venv-platforms/, made once from PyPI and
# cached by their pins), then every Rust test in one `cargo test`: unit tests and the
# end-to-end tests in tests/, which start their own HTTP servers and PostgreSQL, with the
# runtime built with `--features duckdb-linked` against the pinned prebuilt libduckdb
# that scripts/libduckdb.sh brings (cached in .cache/libduckdb/), so the DuckDB tests run
# in the same build (one build of the workspace, not one without DuckDB and one with).
# Extra arguments go to `cargo test`, e.g. `./scripts/test.sh --locked` or
# `./scripts/test.sh -- --nocapture`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/platform-clients.sh
DUCKDB_LIB_DIR="$(./scripts/libduckdb.sh)"
export DUCKDB_LIB_DIR
# shellcheck source=scripts/packages.sh
source scripts/packages.sh
cargo test "${PACKAGES[@]}" --features "$DUCKDB_FEATURES" "$@"
