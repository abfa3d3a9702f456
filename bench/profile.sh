#!/usr/bin/env bash
# Where the runtime's time goes: both clients under valgrind's callgrind on 100,000
# records (or `--records N`), top functions by inclusive and self cost.
# Output: bench/results/profile-runtime.txt and profile-handwritten.txt; the raw data is
# in bench/.work/callgrind.*.out for callgrind_annotate or kcachegrind.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

need_tools valgrind
cargo build --release -p runtime-cli -p bench-handwritten
trap stop_leftovers EXIT INT TERM
python3 bench/bench.py profile "$@"
