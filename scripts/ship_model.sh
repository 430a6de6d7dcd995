#!/usr/bin/env bash
# Copy a finished run's deliverables (or a `ferkeras soup` folder's) into
# saved_models/NAME, evaluate them on FER2013 val (stored in the card), export
# TFLite/ONNX with parity, and bench. Whatever NAME held before is replaced.
#
#   bash scripts/ship_model.sh ~/.cache/ferkeras/runs/fer2013_resnet18_cbam fer2013_resnet18_cbam ../shared/fer2013
#   INT8_FLOAT_OPS=MUL,ADD,... picks the op types the int8 export keeps in float (convert --int8-float-ops)
set -euo pipefail
run=${1:?run folder}
name=${2:-fer2013_resnet18_cbam}
data=${3:-../shared/fer2013}
out=saved_models/$name
[ -f "$run/model.keras" ] && [ -f "$run/model_card.json" ] || { echo "ship_model.sh: $run has no model.keras and model_card.json" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out"
cp "$run/model.keras" "$run/model_card.json" "$out/"
# a training run has config.yaml, training_curves.png and phase histories; a soup has each ingredient's
for extra in "$run"/config.yaml "$run"/training_curves*.png "$run"/history*.csv; do
  if [ -f "$extra" ]; then cp "$extra" "$out/"; fi
done
for phase in phase1 phase2; do
  if [ -f "$run/$phase/history.csv" ]; then cp "$run/$phase/history.csv" "$out/history_$phase.csv"; fi
done
ferkeras evaluate --model "$out" --data "$data" --split val --tta flip --tta tencrop --update-card --output "$out/eval_val"
ferkeras convert --model "$out" --data "$data" --tflite --quantize float16 --quantize int8 --onnx ${INT8_FLOAT_OPS:+--int8-float-ops "$INT8_FLOAT_OPS"}
ferkeras bench "$out" --data "$data" --split val --threads 1 --json "$out/bench.json" | tee "$out/bench.md"
