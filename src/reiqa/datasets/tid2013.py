"""TID2013, the Tampere Image Database 2013 (Ponomarenko et al., 2015).

The folder as published::

    mos_with_names.txt     one line per image: "<MOS> <name>", e.g. "5.51429 i01_01_1.bmp"
    mos_std.txt            one standard deviation per line, same order (optional here)
    distorted_images/      i01_01_1.bmp ... i25_24_5.bmp   (3000 images)
    reference_images/      I01.BMP ... I24.BMP, i25.bmp    (not read)

A name ``iRR_DD_L.bmp`` is reference RR (01..25), distortion type DD (01..24), level L (1..5);
pyiqa's ``process_tid2013.py`` and ARNIQA read the same two files. File names are matched ignoring
case (the archive mixes ``I01.BMP`` and ``i25.bmp``; some copies upper-case the distorted names).

Scores: MOS in 0..9, higher is better (pyiqa: 0..9, "mos"). std: ``mos_std.txt`` when present,
else None. reference: ``I01``..``I25``. distortion: the names in ``DISTORTIONS`` (the TID2013 paper's
24 types, in its order). Uncertain: nothing known; the line format is read as "number, whitespace,
name".
"""

from __future__ import annotations

import re
from pathlib import Path

from reiqa.datasets._common import (
    LabelFile,
    Labels,
    Place,
    Row,
    load_labels,
    parse_float,
    read_text_lines,
    text_rows,
)
from reiqa.datasets.base import LabelTable, Scale, dataset_spec
from reiqa.errors import DatasetError

LABEL_FILE = "mos_with_names.txt"
STD_FILE = "mos_std.txt"
IMAGE_DIR = "distorted_images"
#: the 24 distortion types, by their number in the file names (01..24)
DISTORTIONS: tuple[str, ...] = (
    "additive_gaussian_noise",
    "additive_noise_in_color_components",
    "spatially_correlated_noise",
    "masked_noise",
    "high_frequency_noise",
    "impulse_noise",
    "quantization_noise",
    "gaussian_blur",
    "image_denoising",
    "jpeg",
    "jpeg2000",
    "jpeg_transmission_errors",
    "jpeg2000_transmission_errors",
    "non_eccentricity_pattern_noise",
    "local_blockwise_distortions",
    "mean_shift",
    "contrast_change",
    "color_saturation_change",
    "multiplicative_gaussian_noise",
    "comfort_noise",
    "lossy_compression_of_noisy_images",
    "color_quantization_with_dither",
    "chromatic_aberrations",
    "sparse_sampling_and_reconstruction",
)
_NAME = re.compile(r"^i(\d\d)_(\d\d)_(\d)\.bmp$", re.IGNORECASE)


def _split_line(line: str, place: Place) -> Row:
    parts = line.split()
    if len(parts) != 2:
        raise DatasetError(f"{place}: {line!r}; expected '<MOS> <image name>'")
    return {"MOS": parts[0], "name": parts[1]}


def _entry(row: Row, place: Place) -> dict[str, str]:
    """Reference and distortion type of one line, from its image name iRR_DD_L.bmp."""
    match = _NAME.match(row["name"])
    if match is None:
        raise DatasetError(
            f"{place}: image name {row['name']!r} is not of the form iRR_DD_L.bmp; is this the TID2013 file?"
        )
    kind = int(match.group(2))
    if not 1 <= kind <= len(DISTORTIONS):
        raise DatasetError(f"{place}: distortion type {kind:02d} is outside 01..24")
    return {"reference": f"I{match.group(1)}", "distortion": DISTORTIONS[kind - 1]}


def _std(root: Path, labels: Labels) -> dict[str, list[float]]:
    """The std of each image from mos_std.txt (same order as the labels), when it is there."""
    std_file = root / STD_FILE
    if not std_file.is_file():
        return {}
    std_lines = read_text_lines(std_file)
    if len(std_lines) != len(labels):
        raise DatasetError(
            f"{std_file}: {len(std_lines)} values for the {len(labels)} images of {LABEL_FILE}; "
            "both files must come from the same release (or delete mos_std.txt to load without std)"
        )
    return {"std": [parse_float(v, path=std_file, where=f"line {i}", column="std") for i, v in std_lines]}


LABELS = LabelFile(
    path=LABEL_FILE,
    folder=f"TID2013 folder (it holds {LABEL_FILE} and {IMAGE_DIR}/)",
    rows=text_rows(_split_line),
    image="name",
    score="MOS",
    entry=_entry,
    more=_std,
    images=IMAGE_DIR,
    fix="extract the distorted images into {images}",
)


def load(root: Path) -> LabelTable:
    """Read TID2013 from ``root`` (the folder that holds ``mos_with_names.txt``).

    Raises:
        DatasetError: a label file is missing or malformed, or images are missing.
    """
    return load_labels(SPEC, LABELS, root)


SPEC = dataset_spec(
    name="tid2013",
    title="TID2013",
    kind="synthetic",
    scale=Scale("MOS", 0.0, 9.0, higher_is_better=True),
    official_split=False,
    load=load,
    citation=(
        "N. Ponomarenko et al., 'Image database TID2013: Peculiarities, results and perspectives', "
        "Signal Processing: Image Communication 30, 2015."
    ),
)
