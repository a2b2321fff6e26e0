#!/usr/bin/env bash
# Per-stage CPU time of an older commit and of the working tree, back to back:
#   bench/back_to_back.sh OLD_COMMIT [ROUNDS] [bench_pipeline.py arguments...]
# e.g. bench/back_to_back.sh v0.2.0 2 --scans 20 --kind street --sensors vlp16 hdl64
# Checks OLD_COMMIT out into a temporary git worktree (removed at exit, with nothing
# else), then runs bench/bench_pipeline.py ROUNDS times for each, alternating old and
# new, with one torch thread, so both see the same machine load. Prints each run's
# table under a header naming its code. Needs the venv of scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: bench/back_to_back.sh OLD_COMMIT [ROUNDS] [bench_pipeline.py arguments]}
shift
rounds=2
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
    rounds=$1
    shift
fi
python=$PWD/.venv/bin/python
tmp=$(mktemp -d)
cleanup() {
    git worktree remove --force "$tmp/old" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
git worktree add --detach --quiet "$tmp/old" "$old"
for round in $(seq "$rounds"); do
    for side in old new; do
        root=$PWD
        [[ $side == old ]] && root=$tmp/old
        echo "=== round $round: $side ($(git -C "$root" rev-parse --short HEAD)$([[ $side == new ]] && ! git diff --quiet HEAD && echo ' + working tree'))"
        (cd "$root" && PYTHONPATH=$root "$python" bench/bench_pipeline.py --cpu-threads 1 "$@")
    done
done
