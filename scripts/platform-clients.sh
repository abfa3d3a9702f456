#!/usr/bin/env bash
# Creates the Python clients of the platforms the runtime plugs into, for the tests in
# tests/platform_clients.rs: one venv per client under .venv-platforms/ (the pins of
# Airbyte's PyAirbyte and of the Singer targets conflict, so they do not share one).
# Each venv is rebuilt only when its pinned requirements file changes (its hash is kept
# in the venv). Override the folder with RUNTIME_PLATFORM_VENVS.
set -euo pipefail
cd "$(dirname "$0")/.."

root="${RUNTIME_PLATFORM_VENVS:-$PWD/.venv-platforms}"
python="${PYTHON:-python3}"
mkdir -p "$root"

for req in scripts/platform-clients/*.txt; do
  name=$(basename "$req" .txt)
  venv="$root/$name"
  hash=$( (cat "$req"; "$python" --version) | sha256sum | cut -d' ' -f1)
  if [ -f "$venv/.requirements-hash" ] && [ "$(cat "$venv/.requirements-hash")" = "$hash" ]; then
    echo "$name: up to date ($venv)"
    continue
  fi
  start=$(date +%s)
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  echo "$hash" >"$venv/.requirements-hash"
  echo "$name: installed in $(( $(date +%s) - start ))s ($venv)"
done
