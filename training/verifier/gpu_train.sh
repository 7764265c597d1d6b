#!/usr/bin/env bash
# Train the pair verifier on a CUDA machine that has torch and transformers but no copy of the
# MiniLM weights, and whose tree and returned files are size-capped: start from the shipped
# pair model (from_onnx.py), train a 6-layer teacher with fresh noise and synthetic traps each
# epoch, distil it into 3- and 2-layer students, and pack each as fp16 parts (transfer.py)
# into OUT as soon as it is done. Each run stops after the epoch that passes its time budget.
#
#   OUT=/path bash training/verifier/gpu_train.sh
# Then, here: python training/verifier/transfer.py unpack OUT/l6 RUN_DIR; export_onnx.py --model RUN_DIR
set -euo pipefail
export PYTHONPATH=$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
log="$OUT/sweep.log"
python3 -c "import torch; print(torch.cuda.get_device_name())" | tee "$log"
python3 training/verifier/from_onnx.py --out /tmp/init 2>&1 | tail -1
run() {  # run NAME ARGS...: one configuration, its epochs and best dev figures to the log
    local name=$1; shift
    echo "== $name $*" >> "$log"
    python3 training/verifier/train.py --device cuda --out "/tmp/$name" "$@" 2>&1 \
        | grep -E "^epoch|best_epoch|budget" >> "$log"
    python3 training/verifier/transfer.py pack "/tmp/$name" "$OUT/$name" > /dev/null
}
aug=(--noise ${NOISE:-0.3} --synth-traps ${SYNTH:-0.5})
run l6 --init /tmp/init --layers 6 --lr 5e-5 --epochs 10 "${aug[@]}" --time-budget ${T6:-170}
run l3 --init /tmp/l6 --layers 3 --distill /tmp/l6 --lr 1e-4 --epochs 12 "${aug[@]}" --time-budget ${T3:-120}
run l2 --init /tmp/l6 --layers 2 --distill /tmp/l6 --lr 1e-4 --epochs 12 "${aug[@]}" --time-budget ${T2:-100}
ls -la "$OUT"/*
