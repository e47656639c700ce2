#!/usr/bin/env bash
# Rebuild the shipped default model from nothing (about 1.5 h on 2 cores).
# Needs the Debian sources (see MODEL.md) and the project's virtualenv; writes under $WORK.
# Usage: models/reproduce_default.sh [WORK_DIR]   (then compare WORK/dev-tuned.json with MODEL.md)
set -euo pipefail
WORK=${1:-data/reproduce}
T=${OCML_TRAIN:-ocml-train}
DEV=${DEV:-../shared/data/dev}
mkdir -p "$WORK"

# Teacher data: the synth code of commit 3350bdf (the CRNN teacher was trained on it).
git worktree add --detach "$WORK/synth-v1-code" 3350bdf >/dev/null 2>&1 || true
(cd "$WORK/synth-v1-code" && PYTHONPATH=. python -c "
import sys; from pathlib import Path; from models.synth import SynthConfig, write_dataset
write_dataset(SynthConfig(seed=1, recordings=80, tts_utterances=2500), Path(sys.argv[1]))" "$(realpath "$WORK")/synth1")
$T spectrograms "$WORK/synth1" "$WORK/spec1"
$T train --recipe crnn --data "$WORK/spec1" --out "$WORK/crnn" --epochs 12

# Student data: the current synth code, seeds 2 and 3.
$T synth "$WORK/synth2" --seed 2 --recordings 100 --tts-utterances 3000
$T synth "$WORK/synth3" --seed 3 --recordings 100 --tts-utterances 3000
$T spectrograms "$WORK/synth2" "$WORK/synth3" "$WORK/spec23"
$T train --recipe default --data "$WORK/spec23" --out "$WORK/default" --teacher "$WORK/crnn/savedmodel" --epochs 25

# Tune post-processing on the dev set, score with the tuned values, export with metrics.
$T evaluate "$WORK/default" "$DEV" --tune --threads 1 --json "$WORK/dev.json"
python -c "import json,sys; json.dump(json.load(open(sys.argv[1]))['tuned']['params'], open(sys.argv[2], 'w'))" \
    "$WORK/dev.json" "$WORK/tuned.json"
PARAMS=$(python -c "import json,sys; print(' '.join(f'--param {k}={v}' for k, v in json.load(open(sys.argv[1])).items()))" "$WORK/tuned.json")
# shellcheck disable=SC2086
$T evaluate "$WORK/default" "$DEV" --threads 1 $PARAMS --json "$WORK/dev-tuned.json"
$T export "$WORK/default" "$WORK/export" --data "$WORK/spec23" --metrics "$WORK/dev-tuned.json" \
    --postprocess "$WORK/tuned.json" --name default --version 1.0.0
echo "model in $WORK/export; copy it (with MODEL.md) to models/pretrained/default to ship it"
