#!/usr/bin/env bash
# Rebuild the shipped default model (CRNN 3.2.0) from nothing, in three stages, resumably: run it
# again after an interruption and finished steps are skipped, training resumes from its last
# checkpoint. Needs ocml-train on PATH, the Debian sources of stage 1 installed (make model does
# both) and, for stage 2, the catalogue's pinned sources (fetched here: apt-get download, pip
# download, git; MIRROR=DIR or LOCAL="name=DIR ..." on a machine without network).
# Usage: models/reproduce_default.sh [WORK_DIR] [STAGE1_MODEL] [STAGE2_MODEL]
#   STAGE1_MODEL skips stage 1's training and starts stage 2 from that SavedModel (2.2.0);
#   STAGE2_MODEL skips stage 2's training too and starts stage 3 from it (3.1.0).
# Stage 1 (recipe default-stage1, 2.2.0's): TTS and recorded voices from Debian packages.
# Stage 2 (recipe default-stage2, 3.1.0's): from stage 1's weights, stage 1's data again beside
# the catalogue's real voices, places, human sounds and babble, two thirds of those recordings
# through a microphone / processing / codec channel, rooms up to RT60 1.2 s.
# Stage 3 (recipe default): stage 2's network with a per-10 ms head (fine_head), from stage 2's
# weights, on stage 2's data at a lower learning rate. Each stage is calibrated and tuned on
# dev + val, which are never trained on.
set -euo pipefail
WORK=${1:-data/reproduce}
STAGE1=${2:-}
STAGE2=${3:-}
T=${OCML_TRAIN:-ocml-train}
DEV=${DEV:-../shared/data/dev}
VAL=${VAL:-../shared/data/val}
SOURCES=${SOURCES:-$WORK/sources}
mkdir -p "$WORK"

train() {  # train RECIPE SPEC OUT [ARGS...]: a fresh run, or the interrupted one resumed
  local recipe=$1 spec=$2 out=$3; shift 3
  [ -d "$out/savedmodel" ] && return
  local resume=(); [ -f "$out/checkpoints/last.weights.h5" ] && resume=(--resume)
  $T train --recipe "$recipe" --data "$spec" --out "$out" "$@" "${resume[@]}"
}

calibrate() {  # calibrate RUN EXPORT JSON
  [ -f "$3" ] || $T calibrate "$1" "$DEV" "$VAL" --out "$2" --json "$3" --threads 1 --overwrite
}

# Stage 1's data (recipe default-stage1's synth: section, 160 recordings of TTS and recorded
# voices, then 80 of recorded voices only, for more real speakers) is trained on in every stage.
s1=$WORK/stage1
[ -f "$s1/synth/manifest.json" ] || $T synth "$s1/synth" --recipe default-stage1
[ -f "$s1/synth-voices/manifest.json" ] || \
  $T synth "$s1/synth-voices" --recipe default-stage1 --seed 21 --recordings 80 --tts-utterances 0
if [ -z "$STAGE1" ] && [ -z "$STAGE2" ]; then
  [ -f "$s1/spec/index.json" ] || $T spectrograms "$s1/synth" "$s1/synth-voices" "$s1/spec"
  train default-stage1 "$s1/spec" "$s1/run"
  calibrate "$s1/run" "$s1/export" "$s1/calibration.json"
  STAGE1=$s1/export
fi

local_args=(); for item in ${LOCAL:-}; do local_args+=(--local "$item"); done
$T sources fetch "$SOURCES" ${MIRROR:+--mirror "$MIRROR"} "${local_args[@]}"
s2=$WORK/stage2
[ -f "$s2/synth/manifest.json" ] || $T synth "$s2/synth" --recipe default --sources "$SOURCES"
[ -f "$s2/spec/index.json" ] || $T spectrograms "$s1/synth" "$s1/synth-voices" "$s2/synth" "$s2/spec"
if [ -z "$STAGE2" ]; then
  train default-stage2 "$s2/spec" "$s2/run" --init-from "$STAGE1"
  calibrate "$s2/run" "$s2/export" "$s2/calibration.json"
  STAGE2=$s2/export
fi
s3=$WORK/stage3
train default "$s2/spec" "$s3/run" --init-from "$STAGE2"
calibrate "$s3/run" "$s3/export" "$s3/calibration.json"
echo "model in $s3/export; copy it and MODEL.md to models/pretrained/default to ship it"
