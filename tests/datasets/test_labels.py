"""The shared recipe of the loaders: a declared LabelFile read by load_labels / read_labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reiqa.datasets import DatasetError, csiq, koniq10k, spaq
from reiqa.datasets._common import (
    LabelFile,
    Labels,
    Place,
    Row,
    csv_rows,
    load_labels,
    read_labels,
    text_rows,
    xlsx_rows,
)
from reiqa.datasets.base import Scale, dataset_spec
from tests.datasets import fakes
from tests.datasets import test_csiq as csiq_case
from tests.datasets import test_koniq10k as koniq_case
from tests.datasets import test_spaq as spaq_case

SPEC = dataset_spec(
    name="toy",
    title="Toy",
    kind="authentic",
    scale=Scale("MOS", 1, 5, higher_is_better=True),
    official_split=False,
    load=lambda root: load_labels(SPEC, CSV, root),
    citation="none",
)
CSV = LabelFile(
    path=("labels/scores.csv", "scores.csv"),
    folder="toy folder (it holds scores.csv)",
    rows=csv_rows("toy scores.csv", ("file", "mos", "sd")),
    image="file",
    score="mos",
    std="sd",
    images="pics",
    fix="copy them into {images} (root {root})",
)


def test_scale_gives_the_spec_its_score_range_and_direction() -> None:
    assert SPEC.score == "MOS" and SPEC.score_range == (1.0, 5.0) and SPEC.higher_is_better
    assert all(isinstance(v, float) for v in SPEC.score_range)
    with pytest.raises(ValueError, match="score must be one of"):
        dataset_spec(
            name="x",
            title="X",
            kind="authentic",
            scale=Scale("PSNR", 0, 1, higher_is_better=True),
            official_split=False,
            load=SPEC.load,
            citation="",
        )


def test_load_labels_reads_the_first_label_file_there_and_locates_the_images(tmp_path: Path) -> None:
    fakes.text(tmp_path / "scores.csv", ["file,mos,sd", "a.png,4.5,0.5", " b.png , 2 , 0.25 "])
    fakes.images(tmp_path / "pics", ["a.png", "b.png"])
    table = load_labels(SPEC, CSV, tmp_path)
    assert table.dataset == "toy" and table.paths == [tmp_path / "pics/a.png", tmp_path / "pics/b.png"]
    np.testing.assert_array_equal(table.scores, [4.5, 2.0])
    np.testing.assert_array_equal(table.std, [0.5, 0.25])
    assert table.reference is None and table.distortion is None and table.split is None
    (tmp_path / "scores.csv").unlink()
    with pytest.raises(DatasetError, match=r"labels/scores\.csv: missing; is .* the toy folder"):
        load_labels(SPEC, CSV, tmp_path)


def test_load_labels_fills_root_and_images_into_the_fix(tmp_path: Path) -> None:
    fakes.text(tmp_path / "scores.csv", ["file,mos,sd", "a.png,4.5,0.5"])
    (tmp_path / "pics").mkdir()
    with pytest.raises(DatasetError) as info:
        load_labels(SPEC, CSV, tmp_path)
    assert str(info.value).endswith(f"; copy them into {tmp_path / 'pics'} (root {tmp_path})")


def test_entry_more_and_an_image_folder_chooser(tmp_path: Path) -> None:
    def entry(row: Row, place: Place) -> dict[str, str]:
        if row["kind"] == "?":
            raise DatasetError(f"{place}: kind is unknown")
        return {"image": f"{row['kind']}/{row['file']}", "distortion": row["kind"]}

    def more(root: Path, labels: Labels) -> dict[str, list[str]]:
        return {"split": ["train" if name.startswith("blur") else "test" for name in labels.names]}

    labels = LabelFile(
        path="scores.csv",
        folder="toy folder",
        rows=csv_rows("toy scores.csv", ("file", "mos", "kind")),
        image="file",
        score="mos",
        entry=entry,
        more=more,
        images=lambda root, names: root / "found",
        fix="{images}",
    )
    fakes.text(tmp_path / "scores.csv", ["file,mos,kind", "a.png,1,blur", "a.png,2,jpeg"])
    fakes.images(tmp_path / "found", ["blur/a.png", "jpeg/a.png"])
    table = load_labels(SPEC, labels, tmp_path)
    assert table.paths == [tmp_path / "found/blur/a.png", tmp_path / "found/jpeg/a.png"]
    assert table.distortion == ["blur", "jpeg"] and table.split == ["train", "test"] and table.std is None
    fakes.text(tmp_path / "scores.csv", ["file,mos,kind", "a.png,1,blur", "b.png,2,?"])
    with pytest.raises(DatasetError, match=r"scores\.csv, line 3: kind is unknown"):
        load_labels(SPEC, labels, tmp_path)


def test_rows_are_checked_one_by_one_before_the_whole_file(tmp_path: Path) -> None:
    # a name listed twice (lines 2 and 5) and a bad number further down: the bad row is reported
    koniq_case.make_koniq(tmp_path)
    lines = [*koniq_case.SCORES, koniq_case.SCORES[1], "x.jpg,0,0,0,0,0,0,abc,1,1"]
    fakes.text(tmp_path / koniq10k.LABEL_FILE, lines)
    with pytest.raises(DatasetError, match=r"line 6: MOS is 'abc', not a number"):
        koniq10k.load(tmp_path)
    fakes.text(tmp_path / koniq10k.LABEL_FILE, lines[:-1])
    with pytest.raises(DatasetError, match=r"listed twice \(line 2 and line 5\)"):
        koniq10k.load(tmp_path)


def test_text_rows_split_each_line_as_it_is_read(tmp_path: Path) -> None:
    def split(line: str, place: Place) -> Row:
        name, _, score = line.partition(" ")
        if not score:
            raise DatasetError(f"{place}: no score")
        return {"name": name, "score": score}

    labels = LabelFile(rows=text_rows(split), image="name", score="score")
    path = fakes.text(tmp_path / "labels.txt", ["a.png 1", "", "b.png x", "c.png"])
    with pytest.raises(DatasetError, match=r"labels\.txt, line 3: score is 'x', not a number"):
        read_labels(path, labels)
    fakes.text(path, ["a.png 1", "", "b.png 2.5"])
    found = read_labels(path, labels)
    assert found.names == ["a.png", "b.png"] and found.scores == [1.0, 2.5]
    assert [str(p) for p in found.places] == [f"{path}, line 1", f"{path}, line 3"]


def test_entry_may_only_give_image_reference_and_distortion(tmp_path: Path) -> None:
    labels = LabelFile(
        rows=text_rows(lambda line, place: {"name": line, "score": "1"}),
        image="name",
        score="score",
        entry=lambda row, place: {"split": "train"},
    )
    with pytest.raises(ValueError, match=r"returned \['split'\]"):
        read_labels(fakes.text(tmp_path / "labels.txt", ["a.png"]), labels)


def test_xlsx_rows_skip_padding_rows_that_hold_only_blanks(tmp_path: Path) -> None:
    path = fakes.xlsx(
        tmp_path / "book.xlsx",
        {"S": [["title"], ["name", "mos"], ["a.png", 1.5], [None, None], ["  ", ""], [7.0, 2]]},
    )
    rows = list(xlsx_rows("toy workbook", ("name", "mos"), sheet="S", padding=("name", "mos"))(path))
    assert rows == [
        ("sheet 'S' row 3", {"name": "a.png", "mos": 1.5}),
        ("sheet 'S' row 6", {"name": 7.0, "mos": 2}),
    ]
    labels = LabelFile(rows=xlsx_rows("toy workbook", ("name", "mos")), image="name", score="mos")
    with pytest.raises(DatasetError, match=r"book\.xlsx, row 4: mos is empty, not a number"):
        read_labels(path, labels)  # no padding declared: every row counts


def test_csiq_and_spaq_skip_rows_of_whitespace_only_cells(tmp_path: Path) -> None:
    csiq_case.make_csiq(
        tmp_path / "csiq", rows=[*csiq_case.ROWS, [None, None, None, "  ", 9, " ", None, 1, None]]
    )
    assert len(csiq.load(tmp_path / "csiq")) == 4
    spaq_case.make_spaq(tmp_path / "spaq", rows=[*spaq_case.ROWS, [" ", " ", 1], [None, "", 2]])
    assert len(spaq.load(tmp_path / "spaq")) == 3
