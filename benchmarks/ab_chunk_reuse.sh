#!/usr/bin/env bash
# Speed of two trees side by side on one GPU: benchmarks/chunk_reuse.py of a base tree (a
# `git archive` of an earlier commit, unpacked in BASE) and of this tree, alternated ROUNDS
# times in one process tree, so both see the same card in the same state. Each tree imports its
# own semcache.gpu through a folder of symlinks on PYTHONPATH (as gpu/vllm/launch.py does).
#
#   benchmarks/ab_chunk_reuse.sh .base "$OUT" [chunk_reuse.py arguments]
#
# Writes OUT/base_<i>.json, OUT/new_<i>.json and the printed tables in OUT/ab.log.
set -u
base=$(realpath "${1:?base tree}")
out=$(realpath "${2:?output folder}")
shift 2
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--device cuda --contexts 8192 --ratios 0.15 --runs 30)
rounds=${ROUNDS:-2}
work=$(mktemp -d)

shim() {  # shim TREE DEST: DEST/semcache maps semcache and semcache.gpu onto TREE
    mkdir -p "$2/semcache"
    ln -sfn "$1/semcache/__init__.py" "$2/semcache/__init__.py"
    ln -sfn "$1/gpu" "$2/semcache/gpu"
}
shim "$base" "$work/base-src"
shim "$PWD" "$work/new-src"
for i in $(seq 1 "$rounds"); do
    for side in base new; do
        tree=$([ "$side" = base ] && echo "$base" || echo "$PWD")
        echo "== $side round $i" | tee -a "$out/ab.log"
        (cd "$tree/benchmarks" && export PYTHONPATH="$work/$side-src" && python3 -c "import os, semcache.gpu as g
print('semcache.gpu from', os.path.realpath(g.__path__[0]))" && python3 chunk_reuse.py \
            "${args[@]}" --out "$work/${side}_$i.json") >> "$out/ab.log" 2>&1
        cp "$work/${side}_$i.json" "$out/" 2>/dev/null || echo "no result" | tee -a "$out/ab.log"
    done
done
grep -E "^==|context|r=" "$out/ab.log"
