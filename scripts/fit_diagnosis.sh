#!/usr/bin/env bash
# Fit the diagnosis head of the embedded default model, end to end, and measure it.
#
#   BSDS=DIR KODAK=DIR BIQ2021=DIR bash scripts/fit_diagnosis.sh [OUT]
#
# The training photos: BSDS500's train/ and val/ photos (300; BSDS: its BSR/BSDS500/data/images)
# and the 24 Kodak PNGs (KODAK). The measurement's photos: BIQ2021 Test (BIQ2021: the folder with
# Images/ and the two CSV files), which no part of the default model saw (its quality encoder was
# pre-trained on BSDS500, Kodak, CLIVE and BIQ2021 Train). OUT: the model folder to write (default
# out/default-with-diagnosis): the default model's files, copied byte for byte, and the head
# (diagnosis.json + diagnosis.safetensors).
#
# The fit renders every distortion type at every level (130 renderings) and 8 pristine crops of
# 224 px per photo, runs the quality encoder on each, then chooses the head's strengths on a fifth
# of the photos held out and fits it on all. Seeded: the same photos give the same head.
#
# To ship the head: copy OUT/diagnosis.json and OUT/diagnosis.safetensors into
# src/reiqa/weights/default/ and quote docs/reports/diagnosis.json in the model card and README.
set -euo pipefail
: "${BSDS:?set BSDS=DIR (BSDS500 images: train/, val/)}"
: "${KODAK:?set KODAK=DIR (the 24 Kodak PNGs)}"
: "${BIQ2021:?set BIQ2021=DIR (BIQ2021: Images/ and Test (Images and MOS).csv)}"
OUT="${1:-out/default-with-diagnosis}"
REIQA="${REIQA:-.venv/bin/reiqa}"
PYTHON="${PYTHON:-.venv/bin/python}"

mkdir -p "$(dirname "$OUT")"

# 1. the head: quality encoder blocks (full and half scale), 224 px crops, seed 0
"$REIQA" fit-diagnosis "$BSDS/train" "$BSDS/val" "$KODAK" --model default -o "$OUT" --blocks quality \
    --crop 224 --pristine 8 --seed 0 --device cpu --save-training "$OUT.training.safetensors" --overwrite

# 2. the measurement on photos no part of the model saw: renderings of the 60 best BIQ2021 Test
# photos (224 px crops, as the head reads tiles), the degradations outside the catalogue on the
# first 30 of them (whole photos, through `reiqa diagnose`'s path), and 400 authentic Test photos
# against their opinion scores
"$PYTHON" benchmarks/diagnose.py --model "$OUT" --biq2021 "$BIQ2021" --top 60 --crop 224 \
    --real-photos 30 --authentic 400 --out docs/reports/diagnosis.json
