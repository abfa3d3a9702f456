#!/usr/bin/env bash
# Brings the prebuilt DuckDB library that `--features duckdb-linked` links against, and
# prints the folder that holds it (use it as DUCKDB_LIB_DIR):
#
#   export DUCKDB_LIB_DIR="$(./scripts/libduckdb.sh)"
#   cargo build -p runtime-cli --features duckdb-linked
#
# The library comes from DuckDB's own npm package of prebuilt Node bindings
# (@duckdb/node-bindings-linux-x64), which ships libduckdb.so with the JSON extension
# built in. The version is pinned to the DuckDB release that the `duckdb` /
# `libduckdb-sys` crates pinned in crates/sink-duckdb/Cargo.toml were generated from
# (1.10506.x = DuckDB 1.5.6): change both together. The package's sha512 (npm's
# `integrity`) is pinned too, and checked before anything is unpacked.
#
# The result is cached in .cache/libduckdb/<version>/ (outside git; LIBDUCKDB_CACHE
# moves it), so later runs, offline too, reuse it without asking the registry.
# Linux x86-64 with glibc only: that is the package this pins.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="1.5.6-r.1"
PACKAGE="@duckdb/node-bindings-linux-x64"
# npm view @duckdb/node-bindings-linux-x64@1.5.6-r.1 dist.integrity, as hex.
SHA512="21772b64913a904a8cd19e30c1d5671811d7fdface4b7dd53cd0300d743f43e16cf386f4e7c41ef78721ac208870d2651bc6375072145387817824315b998dd5"

cache="${LIBDUCKDB_CACHE:-$PWD/.cache/libduckdb}/$VERSION"
if [[ -f "$cache/libduckdb.so" && -f "$cache/.verified" ]]; then
  echo "$cache"
  exit 0
fi

if [[ "$(uname -sm)" != "Linux x86_64" ]]; then
  echo "scripts/libduckdb.sh: the pinned package is for Linux x86-64; on $(uname -sm)," \
    "build with --features duckdb (DuckDB compiled from source) instead" >&2
  exit 2
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "scripts/libduckdb.sh: npm is missing; installing Debian's package" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "scripts/libduckdb.sh: fetching $PACKAGE@$VERSION (about 24 MB)" >&2
(cd "$work" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null)
tarball="$(ls "$work"/*.tgz)"
actual="$(sha512sum "$tarball" | cut -d' ' -f1)"
if [[ "$actual" != "$SHA512" ]]; then
  echo "scripts/libduckdb.sh: $PACKAGE@$VERSION has sha512 $actual, expected $SHA512;" \
    "refusing to use it" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work" package/libduckdb.so package/LICENSE
mkdir -p "$cache"
mv "$work/package/libduckdb.so" "$work/package/LICENSE" "$cache/"
echo "$PACKAGE@$VERSION sha512=$SHA512" >"$cache/.verified"
echo "$cache"
