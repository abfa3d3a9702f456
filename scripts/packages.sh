# Sourced by .ci/run: every workspace member plus sink-duckdb (built only with DuckDB, so
# not a member) as `-p` arguments, and the features that link DuckDB, for one clippy run
# over everything (instead of one over the workspace and a second with DuckDB).
# `--workspace` cannot take a package from outside the workspace, hence the list, read
# from `cargo metadata` so no member is left out.
members="$(cargo metadata --no-deps --format-version 1 \
  | python3 -c 'import json, sys; print("\n".join(p["name"] for p in json.load(sys.stdin)["packages"]))')"
PACKAGES=()
while IFS= read -r name; do
  PACKAGES+=(-p "$name")
done <<<"$members"
PACKAGES+=(-p sink-duckdb)
DUCKDB_FEATURES="runtime-cli/duckdb-linked,destinations/duckdb-linked"
