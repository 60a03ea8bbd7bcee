from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reiqa.datasets import DatasetError, agiqa3k
from tests.datasets import fakes

CSV = [
    "name,prompt,adj1,adj2,style,mos_quality,std_quality,mos_align,std_align",
    "AttnGAN_normal_000.jpg,statue of a man,,,,0.965602553,0.223270101,0.40889324,0.615607722",
    'AttnGAN_normal_060.jpg,"artwork with only triangles, anime style",,,anime style,'
    "0.919776796,0.719282241,0.85,0.84",
    "sd1.5_lowstep_001.jpg,a cat doing karaoke,,,,3.2,0.5,2.1,0.7",
]
NAMES = ["AttnGAN_normal_000.jpg", "AttnGAN_normal_060.jpg", "sd1.5_lowstep_001.jpg"]


@pytest.mark.parametrize("folder", ["images", "AGIQA-3K", "."])
def test_reads_data_csv_with_quoted_prompts(tmp_path: Path, folder: str) -> None:
    fakes.text(tmp_path / "data.csv", CSV)
    fakes.images(tmp_path / folder, NAMES)
    table = agiqa3k.load(tmp_path)
    assert table.paths == [tmp_path / folder / n for n in NAMES]
    np.testing.assert_allclose(table.scores, [0.965602553, 0.919776796, 3.2])
    np.testing.assert_allclose(table.std, [0.223270101, 0.719282241, 0.5])
    assert table.higher_is_better and agiqa3k.SPEC.kind == "ai-generated"


def test_missing_label_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"data\.csv: missing; is .* the AGIQA-3K folder"):
        agiqa3k.load(tmp_path)


def test_missing_images(tmp_path: Path) -> None:
    fakes.text(tmp_path / "data.csv", CSV)
    fakes.images(tmp_path / "images", NAMES[:2])
    with pytest.raises(
        DatasetError, match=r"images: 1 of 3 images listed in .*data\.csv are missing \(sd1\.5_lowstep"
    ):
        agiqa3k.load(tmp_path)
