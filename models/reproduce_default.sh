#!/usr/bin/env bash
# Rebuild the shipped default model (CRNN 3.0.0) from nothing, in two stages: about two and a half
# hours on 2 cores. Needs the Debian sources listed in models/pretrained/default/MODEL.md (make
# model installs them) and ocml-train on PATH. Safe to run again after an interruption: finished
# steps are skipped and training resumes from its last checkpoint.
# Usage: models/reproduce_default.sh [WORK_DIR]   then compare WORK/calibration.json with MODEL.md.
# SOURCES (default WORK/sources) holds the catalogue's sources; MIRROR, a folder of bare git
# repositories named owner+name, is tried before GitHub; LOCAL="name=DIR ..." takes sources
# from folders on a machine without network.
set -euo pipefail
WORK=${1:-data/reproduce}
T=${OCML_TRAIN:-ocml-train}
DEV=${DEV:-../shared/data/dev}
VAL=${VAL:-../shared/data/val}
SOURCES=${SOURCES:-$WORK/sources}
mkdir -p "$WORK"

synth() { [ -f "$1/manifest.json" ] || $T synth "$@"; }
spectrograms() { [ -f "${*: -1}/index.json" ] || $T spectrograms "$@"; }
train() {  # train OUT ARGS...: resumes OUT's checkpoints if it has any, skips a finished run
  local out=$1; shift
  [ -d "$out/savedmodel" ] && return
  local resume=(); [ -f "$out/checkpoints/last.weights.h5" ] && resume=(--resume)
  $T train --out "$out" "$@" "${resume[@]}"
}

# Stage 1, the 2.2.0 recipe: its synth section (160 recordings: TTS and recorded voices), then 80
# recordings of recorded voices only (no TTS), for more real speakers.
synth "$WORK/synth" --recipe default-stage1
synth "$WORK/synth-voices" --recipe default-stage1 --seed 21 --recordings 80 --tts-utterances 0
spectrograms "$WORK/synth" "$WORK/synth-voices" "$WORK/spec"
train "$WORK/stage1" --recipe default-stage1 --data "$WORK/spec"

# Stage 2, from stage 1's weights: the catalogue's real voices, places and human sounds, and
# channels (band limits, codecs, gain control, gates) on two thirds of the recordings.
local_args=(); for item in ${LOCAL:-}; do local_args+=(--local "$item"); done
$T sources fetch "$SOURCES" ${MIRROR:+--mirror "$MIRROR"} "${local_args[@]}"
synth "$WORK/synth3" --recipe default --sources "$SOURCES"
spectrograms "$WORK/synth3" "$WORK/spec3"
train "$WORK/default" --recipe default --data "$WORK/spec3" --init-from "$WORK/stage1/savedmodel"

# Calibrate on dev + val pooled (for the generic defaults), tune post-processing on the pool,
# and write the model with its metrics and its ONNX asset (assets/model.onnx, which needs the
# train extra: onnx, tf2onnx): dev and val are never trained on.
$T calibrate "$WORK/default" "$DEV" "$VAL" --out "$WORK/export" --json "$WORK/calibration.json" \
    --threads 1 --overwrite
echo "model in $WORK/export; copy it and MODEL.md to models/pretrained/default to ship it"
