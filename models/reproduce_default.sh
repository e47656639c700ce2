#!/usr/bin/env bash
# Rebuild the shipped default model (CRNN 1.0.0) from nothing: about 40 minutes on 2 cores.
# Needs the Debian sources listed in models/pretrained/default/MODEL.md and ocml-train on PATH.
# Usage: models/reproduce_default.sh [WORK_DIR]   then compare WORK/dev-tuned.json with MODEL.md.
set -euo pipefail
WORK=${1:-data/reproduce}
T=${OCML_TRAIN:-ocml-train}
PY=${PYTHON:-python}
DEV=${DEV:-../shared/data/dev}
mkdir -p "$WORK"

$T synth "$WORK/synth" --seed 2 --recordings 100 --tts-utterances 3000
$T spectrograms "$WORK/synth" "$WORK/spec"
$T train --recipe default --data "$WORK/spec" --out "$WORK/default"

# Tune post-processing on the dev set, score with the tuned values, export with the metrics.
$T evaluate "$WORK/default" "$DEV" --tune --threads 1 --json "$WORK/dev.json"
$PY -c "import json,sys; json.dump(json.load(open(sys.argv[1]))['tuned']['params'], open(sys.argv[2], 'w'))" \
    "$WORK/dev.json" "$WORK/tuned.json"
read -r -a PARAMS <<< "$($PY -c "import json,sys; print(' '.join(f'--param {k}={v}' for k, v in json.load(open(sys.argv[1])).items()))" "$WORK/tuned.json")"
$T evaluate "$WORK/default" "$DEV" --threads 1 "${PARAMS[@]}" --json "$WORK/dev-tuned.json"
$T export "$WORK/default" "$WORK/export" --data "$WORK/spec" --metrics "$WORK/dev-tuned.json" \
    --postprocess "$WORK/tuned.json" --name default --version 1.0.0
echo "model in $WORK/export; copy it and MODEL.md to models/pretrained/default to ship it"
