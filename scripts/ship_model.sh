#!/usr/bin/env bash
# Copy a finished run's deliverables into saved_models/NAME, evaluate them on
# FER2013 val (stored in the card), export TFLite/ONNX with parity, and bench.
#
#   bash scripts/ship_model.sh ~/.cache/ferkeras/runs/fer2013_resnet18_cbam fer2013_resnet18_cbam ../shared/fer2013
set -euo pipefail
run=${1:?run folder}
name=${2:-fer2013_resnet18_cbam}
data=${3:-../shared/fer2013}
out=saved_models/$name
mkdir -p "$out"
cp "$run/model.keras" "$run/model_card.json" "$run/training_curves.png" "$run/config.yaml" "$out/"
for phase in phase1 phase2; do
  [ -f "$run/$phase/history.csv" ] && cp "$run/$phase/history.csv" "$out/history_$phase.csv"
done
ferkeras evaluate --model "$out" --data "$data" --split val --tta flip --tta tencrop --update-card --output "$out/eval_val"
ferkeras convert --model "$out" --data "$data" --tflite --quantize float16 --quantize int8 --onnx
ferkeras bench "$out" --data "$data" --split val --threads 1 --json "$out/bench.json" | tee "$out/bench.md"
