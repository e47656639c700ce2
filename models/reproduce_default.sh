#!/usr/bin/env bash
# Rebuild the shipped default model (CRNN 2.2.0) from nothing: about an hour on 2 cores.
# Needs the Debian sources listed in models/pretrained/default/MODEL.md and ocml-train on PATH.
# Usage: models/reproduce_default.sh [WORK_DIR]   then compare WORK/calibration.json with MODEL.md.
set -euo pipefail
WORK=${1:-data/reproduce}
T=${OCML_TRAIN:-ocml-train}
DEV=${DEV:-../shared/data/dev}
VAL=${VAL:-../shared/data/val}
mkdir -p "$WORK"

# The recipe's synth: section (160 recordings: TTS and recorded voices), then 80 recordings of
# recorded voices only (no TTS), for more real speakers.
$T synth "$WORK/synth" --recipe default
$T synth "$WORK/synth-voices" --recipe default --seed 21 --recordings 80 --tts-utterances 0
$T spectrograms "$WORK/synth" "$WORK/synth-voices" "$WORK/spec"
$T train --recipe default --data "$WORK/spec" --out "$WORK/default"

# Calibrate on dev + val pooled (for the generic defaults), tune post-processing on the pool,
# and write the model with its metrics and its ONNX asset (assets/model.onnx, which needs the
# train extra: onnx, tf2onnx): dev and val are never trained on.
$T calibrate "$WORK/default" "$DEV" "$VAL" --out "$WORK/export" --json "$WORK/calibration.json" \
    --threads 1
echo "model in $WORK/export; copy it and MODEL.md to models/pretrained/default to ship it"
