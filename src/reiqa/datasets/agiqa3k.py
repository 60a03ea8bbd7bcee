"""AGIQA-3K (Li et al., IEEE TCSVT 2023): 2,982 images from six text-to-image models.

The folder as published (``data.csv`` is in github.com/lcysyzxdxc/AGIQA-3k-Database; the images
come from its Baidu / Google Drive archive)::

    data.csv    header: name,prompt,adj1,adj2,style,mos_quality,std_quality,mos_align,std_align
                e.g.    AttnGAN_normal_000.jpg,statue of a man,,,,0.9656,0.2233,0.4089,0.6156
    <images>/   AttnGAN_normal_000.jpg ...

The image folder's name differs between copies (``images/``, ``Images/``, ``image/``,
``AGIQA-3K/``, or the images next to data.csv); the first of ``IMAGE_DIRS`` that holds the first
listed image is used. Prompts are quoted CSV fields that may contain commas.

Scores: ``mos_quality`` (perceptual quality), higher is better; std: ``std_quality``. The published
values lie in about 0..5 (nominal range 0..5, not stated in data.csv). ``mos_align`` (text-image
alignment) is not loaded. No official split; no reference images.
"""

from __future__ import annotations

from pathlib import Path

from reiqa.datasets._common import LabelFile, csv_rows, load_labels
from reiqa.datasets.base import LabelTable, Scale, dataset_spec

LABEL_FILE = "data.csv"
IMAGE_DIRS = ("images", "Images", "image", "AGIQA-3K", "AGIQA-3k", "AGIQA_3K", ".")


def _image_dir(root: Path, names: list[str]) -> Path:
    """The first of IMAGE_DIRS holding the first listed image; else the first that exists; else
    ``images/``."""
    for name in IMAGE_DIRS:
        if (root / name / names[0]).is_file():
            return root / name
    for name in IMAGE_DIRS[:-1]:
        if (root / name).is_dir():
            return root / name
    return root / IMAGE_DIRS[0]


LABELS = LabelFile(
    path=LABEL_FILE,
    folder=f"AGIQA-3K folder (it holds {LABEL_FILE} and the images)",
    rows=csv_rows("AGIQA-3K data.csv", ("name", "mos_quality", "std_quality")),
    image="name",
    score="mos_quality",
    std="std_quality",
    images=_image_dir,
    fix="extract the AGIQA-3K images into {root}/" + IMAGE_DIRS[0],
)


def load(root: Path) -> LabelTable:
    """Read AGIQA-3K from ``root`` (the folder that holds ``data.csv``).

    Raises:
        DatasetError: ``data.csv`` is missing or malformed, or images are missing.
    """
    return load_labels(SPEC, LABELS, root)


SPEC = dataset_spec(
    name="agiqa3k",
    title="AGIQA-3K",
    kind="ai-generated",
    scale=Scale("MOS", 0.0, 5.0, higher_is_better=True),
    official_split=False,
    load=load,
    citation=(
        "C. Li, Z. Zhang, H. Wu, W. Sun, X. Min, X. Liu, G. Zhai, W. Lin, 'AGIQA-3K: An Open Database for "
        "AI-Generated Image Quality Assessment', IEEE Trans. Circuits and Systems for Video Technology, 2023."
    ),
)
