"""``reiqa cull``: the blocked search against brute force, groups and their numbering, keep-K,
failed files, the keepers' links, resuming a stopped run, and the command end to end, on tiny
models and images the tests make."""

from __future__ import annotations

import csv
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reiqa import cull
from reiqa.cli import DEFAULT_CULL_SIMILARITY
from reiqa.cull import (
    Culled,
    CullRecord,
    components,
    cull_files,
    cull_inputs,
    group_embeddings,
    group_records,
    link_keepers,
    normalise,
    similar_pairs,
)
from reiqa.errors import ConfigError, OutputError
from reiqa.inference import load
from reiqa.outputs import ScoreRecord, lock_output
from tests.conftest import run_cli, save_tiny_bundle, textured_images


def _clusters(n_groups: int, size: int, d: int, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_groups, d))
    points = centres.repeat(size, axis=0) + spread * rng.normal(size=(n_groups * size, d))
    return normalise(points[rng.permutation(len(points))])


@pytest.mark.parametrize("block", [1, 7, 64, 1000])
def test_blocked_search_finds_exactly_the_pairs_of_the_full_matrix(block: int) -> None:
    unit = _clusters(30, 5, 16, 0.4, seed=block)  # 150 rows: tiles of 7 and 64 cut clusters apart
    pairs = similar_pairs(unit, 0.8, block=block)
    full = unit @ unit.T
    i, j = np.nonzero(np.triu(full >= 0.8, k=1))
    assert len(i) > 100  # pairs inside and across tiles
    assert sorted(zip(pairs.first.tolist(), pairs.second.tolist(), strict=True)) == sorted(
        zip(i.tolist(), j.tolist(), strict=True)
    )
    assert np.all(pairs.first < pairs.second)
    np.testing.assert_allclose(pairs.similarity, full[pairs.first, pairs.second], atol=1e-6)


def test_groups_are_single_linkage_numbered_by_their_first_row() -> None:
    # rows 0-1-3 form a chain (0~1, 1~3, 0 !~ 3), rows 2 and 4 are alone, row 5 is 2's twin
    a = np.array([1.0, 0.0, 0.0])
    b = np.array([np.cos(0.5), np.sin(0.5), 0.0])
    c = np.array([np.cos(1.0), np.sin(1.0), 0.0])
    unit = normalise(np.stack([a, b, [0, 0, 1.0], c, [0, -1.0, 0], [0, 0.01, 1.0]]))
    assert unit[0] @ unit[3] < 0.85 <= min(unit[0] @ unit[1], unit[1] @ unit[3])
    groups = components(len(unit), similar_pairs(unit, 0.85))
    assert groups.tolist() == [0, 0, 1, 0, 2, 1]


def _brute_force_groups(n: int, edges: list[tuple[int, int]]) -> list[int]:
    """Groups by a depth-first search from each row not yet reached, numbered in row order."""
    neighbours: list[set[int]] = [set() for _ in range(n)]
    for i, j in edges:
        neighbours[i].add(j)
        neighbours[j].add(i)
    group = [-1] * n
    count = 0
    for start in range(n):
        if group[start] < 0:
            group[start], todo = count, [start]
            while todo:
                for nxt in neighbours[todo.pop()]:
                    if group[nxt] < 0:
                        group[nxt] = count
                        todo.append(nxt)
            count += 1
    return group


@pytest.mark.parametrize("seed", range(12))
def test_components_match_a_brute_force_search_on_random_graphs(seed: int) -> None:
    """Sparse and dense graphs, chains in shuffled order (many rounds of hooking), repeated edges
    and isolated rows; the edges' two ends in either order."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    m = int(rng.integers(0, 2 * n))
    first, second = rng.integers(0, n, m), rng.integers(0, n, m)
    if seed % 3 == 0:  # a long chain through a random order of the rows
        order = rng.permutation(n)
        first, second = np.concatenate([first, order[:-1]]), np.concatenate([second, order[1:]])
    keep = first != second
    first, second = first[keep], second[keep]
    pairs = cull.Pairs(first, second, np.ones(len(first), np.float32))
    expected = _brute_force_groups(n, list(zip(first.tolist(), second.tolist(), strict=True)))
    assert components(n, pairs).tolist() == expected


def test_components_of_no_rows_and_no_pairs() -> None:
    none = cull.Pairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    assert components(0, none).tolist() == []
    assert components(3, none).tolist() == [0, 1, 2]


def test_keep_k_marks_the_best_k_of_each_group_by_score() -> None:
    unit = normalise(np.array([[1.0, 0], [1, 0.01], [1, 0.02], [0, 1.0], [0.01, 1]]))
    scores = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    one = group_embeddings(unit, scores, similarity=0.9)
    assert one.group.tolist() == [0, 0, 0, 1, 1]
    assert one.rank.tolist() == [2, 0, 1, 0, 1]
    assert one.keep.tolist() == [False, True, False, True, False]
    two = group_embeddings(unit, scores, similarity=0.9, keep=2)
    assert two.keep.tolist() == [False, True, True, True, True]
    lower = group_embeddings(unit, scores, similarity=0.9, higher_is_better=False)
    assert lower.keep.tolist() == [True, False, False, False, True]
    tie = group_embeddings(unit, np.ones(5), similarity=0.9)
    assert tie.keep.tolist() == [True, False, False, True, False]  # ties: the earlier row
    with pytest.raises(ConfigError, match="keep"):
        group_embeddings(unit, scores, similarity=0.9, keep=0)


def test_failed_records_are_reported_last_and_never_grouped() -> None:
    records = [
        ScoreRecord("a.jpg", 2.0, None),
        ScoreRecord("bad.jpg", None, "bad.jpg: not an image"),
        ScoreRecord("b.jpg", 1.0, None),
        ScoreRecord("c.jpg", 3.0, None),
    ]
    unit = normalise(np.array([[1.0, 0], [0, 0], [0, 1.0], [1, 0.01]]))
    culled = group_records(records, unit, similarity=0.9)
    assert [(r.path, r.group, r.keep) for r in culled.records] == [
        ("c.jpg", 1, True),
        ("a.jpg", 1, False),
        ("b.jpg", 2, True),
        ("bad.jpg", None, False),
    ]
    assert culled.records[-1].error == "bad.jpg: not an image" and culled.records[-1].score is None
    assert (culled.groups, culled.kept, culled.failed) == (2, 2, 1)


# -- files ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A model folder with random ResNet-18 quality and content encoders (gap: 4 x 512 features)."""
    return save_tiny_bundle(tmp_path_factory.mktemp("model") / "tiny", name="tiny cull model", content=True)


def _photo(path: Path, seed: int) -> Path:
    pixels = textured_images(1, 40, 56, seed=seed)[0].permute(1, 2, 0).mul(255).round().byte().numpy()
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def photos(tmp_path) -> Path:
    """Four scenes, one of them twice (the same bytes under another name), and a broken file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        _photo(folder / f"{i}.png", seed=i)
    (folder / "0-again.png").write_bytes((folder / "0.png").read_bytes())
    (folder / "broken.png").write_bytes(b"not a png")
    return folder


SIMILAR = 0.99999  # the copy's embedding equals its original's; the other scenes' do not


def test_files_are_grouped_ranked_and_scored_as_reiqa_score_scores_them(tiny_model, photos) -> None:
    model = load(tiny_model)
    paths = sorted(photos.iterdir(), reverse=True)  # the order named does not matter
    culled = cull_files(model, paths, similarity=SIMILAR)
    rows = {Path(r.path).name: r for r in culled.records}
    assert [Path(r.path).name for r in culled.records] == [
        "0-again.png",
        "0.png",
        "1.png",
        "2.png",
        "3.png",
        "broken.png",
    ]
    assert rows["0.png"].group == rows["0-again.png"].group == 1
    assert [rows[f"{i}.png"].group for i in (1, 2, 3)] == [2, 3, 4]
    assert rows["0-again.png"].keep and not rows["0.png"].keep  # equal scores: the first by name
    assert rows["broken.png"].group is None and "broken.png" in rows["broken.png"].error
    expected = {Path(r.path).name: r.score for r in model.score_files(paths)}
    for name, row in rows.items():
        if row.score is not None:
            assert row.score == float(np.float32(expected[name]))


def test_a_stopped_run_resumes_from_its_cache_and_ends_as_an_uninterrupted_run(
    tiny_model, photos, tmp_path, monkeypatch
) -> None:
    model = load(tiny_model)
    paths = sorted(photos.iterdir())
    whole = cull_files(model, paths, similarity=SIMILAR)
    real = cull.iter_features
    seen: list[int] = []

    def stopping(net, todo, **kw):
        seen.append(len(todo))
        for k, batch in enumerate(real(net, todo, **kw)):
            if k == 1 and len(seen) == 1:
                raise KeyboardInterrupt  # the first run stops after one batch
            yield batch

    monkeypatch.setattr(cull, "iter_features", stopping)
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        cull_files(model, paths, similarity=SIMILAR, cache=cache, batch_size=2)
    resumed = cull_files(model, paths, similarity=SIMILAR, cache=cache, batch_size=2)
    assert seen == [6, 4]  # the second run reads only what the first did not finish
    assert resumed.cached == 2 and resumed.records == whole.records
    again = cull_files(model, paths, similarity=SIMILAR, cache=cache, batch_size=2)
    assert again.cached == 5 and seen[-1] == 1  # the broken file is tried again, never cached
    assert again.records == whole.records


def test_a_model_without_a_content_encoder_is_refused(tmp_path, photos) -> None:
    from tests.conftest import save_tiny_bundle

    model = load(save_tiny_bundle(tmp_path / "q"))
    with pytest.raises(ConfigError, match="content encoder"):
        cull_files(model, [photos / "0.png"])


# -- links ---------------------------------------------------------------------------------------


def _culled(*paths: Path) -> Culled:
    return Culled([CullRecord(str(p), 1, 1.0, True, None) for p in paths], 1)


def test_keepers_are_linked_without_ever_replacing_a_file(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = tmp_path / "a" / "IMG_1.jpg"
    second = tmp_path / "b" / "IMG_1.jpg"  # the same name in another folder
    first.write_bytes(b"first")
    second.write_bytes(b"second")
    out = tmp_path / "keepers"
    out.mkdir()
    (out / "IMG_1.jpg").write_bytes(b"the user's own")
    links = link_keepers(_culled(first, second), out)
    assert [(link.target.name, link.how) for link in links] == [
        ("IMG_1-1.jpg", "hard link"),
        ("IMG_1-2.jpg", "hard link"),
    ]
    assert (out / "IMG_1.jpg").read_bytes() == b"the user's own"
    assert os.path.samefile(out / "IMG_1-1.jpg", first) and os.path.samefile(out / "IMG_1-2.jpg", second)
    again = link_keepers(_culled(first, second), out)  # a second run places nothing twice
    assert [link.how for link in again] == ["already there"] * 2 and len(list(out.iterdir())) == 3


def test_keepers_fall_back_to_symbolic_links_then_copies(tmp_path, monkeypatch) -> None:
    source = tmp_path / "IMG_2.jpg"
    source.write_bytes(b"photo")

    def cross_device(*_):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    (link,) = link_keepers(_culled(source), tmp_path / "sym")
    assert link.how == "symbolic link" and link.target.is_symlink() and link.target.read_bytes() == b"photo"
    monkeypatch.setattr(os, "symlink", cross_device)
    (copy,) = link_keepers(_culled(source), tmp_path / "copies")
    assert copy.how == "copy" and not copy.target.is_symlink() and copy.target.read_bytes() == b"photo"
    (again,) = link_keepers(_culled(source), tmp_path / "copies")
    assert again.how == "already there"


# -- the command ---------------------------------------------------------------------------------


def test_the_command_writes_rows_links_keepers_and_resumes(
    tiny_model, photos, tmp_path, capsys, monkeypatch
) -> None:
    out = tmp_path / "out" / "cull.csv"
    args = ["cull", photos, "-o", out, "--similarity", SIMILAR, "--model", tiny_model, "--device", "cpu"]
    code, stdout, err = run_cli([*args, "--link-keepers", tmp_path / "keep"], capsys, monkeypatch)
    assert code == 3 and stdout == ""  # the broken file: reported, exit status 3
    assert "skipped: " in err and "broken.png" in err and "5 files: 4 groups, 4 kept, 1 failed" in err
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["path", "group", "score", "keep", "error"]
    assert [(Path(r["path"]).name, r["group"], r["keep"]) for r in rows] == [
        ("0-again.png", "1", "true"),
        ("0.png", "1", "false"),
        ("1.png", "2", "true"),
        ("2.png", "3", "true"),
        ("3.png", "4", "true"),
        ("broken.png", "", "false"),
    ]
    assert rows[-1]["score"] == "" and "broken.png" in rows[-1]["error"]
    assert sorted(p.name for p in (tmp_path / "keep").iterdir()) == ["0-again.png", "1.png", "2.png", "3.png"]
    code, _, err = run_cli([*args, "--keep", "2"], capsys, monkeypatch)  # from the cache, regrouped
    assert code == 3 and "5 files (5 from " in err and ": 4 groups, 5 kept" in err
    record = json.loads((out.parent / ".cull.csv.reiqa.json").read_text())
    assert record["format"] == "reiqa-cull-1" and record["keep"] == 2


def test_the_command_prints_rows_and_refuses_foreign_outputs(
    tiny_model, photos, tmp_path, capsys, monkeypatch
) -> None:
    good = [photos / "0.png", photos / "0-again.png", photos / "1.png"]
    base = ["--similarity", SIMILAR, "--model", tiny_model, "--device", "cpu"]
    code, stdout, err = run_cli(["cull", *good, *base], capsys, monkeypatch)
    assert code == 0 and "3 files: 2 groups, 2 kept, 0 failed" in err
    lines = stdout.splitlines()
    assert len(lines) == 3 and lines[0].split()[:2] == ["1", "keep"] and lines[0].endswith("0-again.png")
    theirs = tmp_path / "theirs.json"
    theirs.write_text("[]")
    code, _, err = run_cli(["cull", *good, *base, "-o", theirs], capsys, monkeypatch)
    assert code == 1 and err.startswith("error: ") and "--overwrite" in err and theirs.read_text() == "[]"
    code, _, err = run_cli(["cull", *good, *base, "-o", theirs, "--overwrite"], capsys, monkeypatch)
    items = json.loads(theirs.read_text())
    assert code == 0 and [(i["group"], i["keep"]) for i in items] == [(1, True), (1, False), (2, True)]


def test_a_second_run_on_the_same_output_is_refused(tiny_model, photos, tmp_path) -> None:
    out = tmp_path / "cull.jsonl"
    with lock_output(out), pytest.raises(OutputError, match="another reiqa run"):
        cull_inputs([photos], out, model=tiny_model, device="cpu")
    assert not out.exists()


def test_the_cli_default_is_the_librarys() -> None:
    assert DEFAULT_CULL_SIMILARITY == cull.DEFAULT_SIMILARITY


def test_the_embedding_weighs_both_scales_equally() -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(2, 10)).astype(np.float32)
    rows[:, 5:] *= 100  # one scale's features much larger than the other's
    columns = [slice(0, 5), slice(5, 10)]
    a, b = cull.embed(rows, columns)
    per_scale = [float(normalise(rows[:, c])[0] @ normalise(rows[:, c])[1]) for c in columns]
    assert a @ b == pytest.approx(np.mean(per_scale), abs=1e-6)
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-6)
