#!/usr/bin/env bash
# The whole test suite in one command: the platforms' Python clients that
# tests/platform_clients.rs drives (venvs under .venv-platforms/, made once from PyPI and
# cached by their pins), then every Rust test (unit tests and the end-to-end tests in
# tests/, which start their own HTTP servers and PostgreSQL), then the DuckDB tests: the
# runtime built with `--features duckdb-linked` against the pinned prebuilt libduckdb
# that scripts/libduckdb.sh brings (cached in .cache/libduckdb/). Extra arguments go to
# `cargo test`, e.g. `./scripts/test.sh --locked` or `./scripts/test.sh -- --nocapture`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/platform-clients.sh
cargo test --workspace "$@"

# Split the arguments at `--`: cargo's options, then the test binaries' arguments.
cargo_args=()
test_args=()
seen_dashes=0
for a in "$@"; do
  if [[ $seen_dashes == 0 && "$a" == "--" ]]; then
    seen_dashes=1
  elif [[ $seen_dashes == 0 ]]; then
    cargo_args+=("$a")
  else
    test_args+=("$a")
  fi
done
DUCKDB_LIB_DIR="$(./scripts/libduckdb.sh)"
export DUCKDB_LIB_DIR
# The end-to-end tests whose names end in `_duckdb` and the refusals (now with DuckDB's
# cases; the PostgreSQL tests ran above), then the unit tests of the crates that link
# DuckDB.
cargo test -p runtime-cli --features duckdb-linked --test destinations --test destinations_kill \
  "${cargo_args[@]}" -- _duckdb refused_before_any_request "${test_args[@]}"
# (The unit tests' binaries have no RUNPATH of their own: they find the library here.)
LD_LIBRARY_PATH="$DUCKDB_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  cargo test -p destinations -p sink-duckdb --features destinations/duckdb-linked --lib \
  "${cargo_args[@]}" -- "${test_args[@]}"
