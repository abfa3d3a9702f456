#!/usr/bin/env bash
# Creates the Python clients of the platforms the runtime plugs into, for the tests in
# tests/platform_clients.rs: one venv per client under .venv-platforms/ (the pins of
# PyAirbyte's CDK and of the Singer targets conflict, so they do not share one), from
# the pinned requirements in scripts/platform-clients/*.txt. A venv is rebuilt only when
# its requirements file (or the Python version) changes: its hash is kept in the venv.
# The venvs are built in parallel; each one's pip log is shown if it fails.
# Override the folder with RUNTIME_PLATFORM_VENVS, the interpreter with PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."

root="${RUNTIME_PLATFORM_VENVS:-$PWD/.venv-platforms}"
python="${PYTHON:-python3}"
mkdir -p "$root"

build() {
  local req=$1 name venv hash start
  name=$(basename "$req" .txt)
  venv="$root/$name"
  hash=$( (cat "$req"; "$python" --version) | sha256sum | cut -d' ' -f1)
  if [ -f "$venv/.requirements-hash" ] && [ "$(cat "$venv/.requirements-hash")" = "$hash" ]; then
    echo "$name: up to date ($venv)"
    return 0
  fi
  start=$(date +%s)
  rm -rf "$venv"
  "$python" -m venv "$venv"
  if ! { "$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip &&
         "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"; } >"$root/$name.log" 2>&1; then
    echo "$name: pip install -r $req failed:" >&2
    cat "$root/$name.log" >&2
    return 1
  fi
  echo "$hash" >"$venv/.requirements-hash"
  echo "$name: installed in $(( $(date +%s) - start ))s ($venv)"
}

pids=()
for req in scripts/platform-clients/*.txt; do
  build "$req" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || status=1
done
exit $status
