#!/usr/bin/env bash
# Train the pair verifier on a CUDA machine that has torch and transformers but no copy of the
# MiniLM weights, and whose tree and returned files are size-capped: start from the shipped
# pair model (from_onnx.py), train each configuration, and pack the best 6-layer run and the
# smaller ones as fp16 parts (transfer.py) into OUT.
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
    python3 training/verifier/train.py --device cuda --init /tmp/init --out "/tmp/$name" "$@" 2>&1 \
        | grep -E "^epoch|best_epoch" >> "$log"
}
run l6a --layers 6 --lr 5e-5 --epochs 8
run l6b --layers 6 --lr 2e-5 --epochs 12
run l6c --layers 6 --lr 1e-4 --epochs 6
run l4 --layers 4 --lr 1e-4 --epochs 12
run l3 --layers 3 --lr 1e-4 --epochs 12
best=$(python3 - <<'PY'
import json
runs = ["l6a", "l6b", "l6c"]
print(max(runs, key=lambda r: json.load(open(f"/tmp/{r}/pair_head.json"))["dev"]["served"]))
PY
)
echo "best 6-layer: $best" >> "$log"
python3 training/verifier/transfer.py pack "/tmp/$best" "$OUT/l6"
python3 training/verifier/transfer.py pack /tmp/l4 "$OUT/l4"
python3 training/verifier/transfer.py pack /tmp/l3 "$OUT/l3"
ls -la "$OUT"/*
