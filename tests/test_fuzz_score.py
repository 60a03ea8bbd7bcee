"""Fuzz test: a seeded corpus of mutated JPEG/PNG/WebP/TIFF/GIF/BMP files through ``load_image``
and ``reiqa score``, and one of the rarer formats (TGA, DDS, PCX, SGI, ICNS, QOI, BLP, MPO, FLI, ...,
and EPS, WMF, PDF, PSD, which are refused) through ``load_image`` and ``decode_image``.

Every file must either load as a (3, H, W) float tensor in [0, 1] or raise ``ImageLoadError``,
within a per-file time limit, and the command line must score or report each one without a
traceback. The seed comes from ``REIQA_FUZZ_SEED`` (default 0); the seed and the counts are printed
to the terminal even without ``-s``, and repeated in every assertion message, so a CI failure can
be replayed with ``REIQA_FUZZ_SEED=<seed> pytest tests/test_fuzz_score.py``.
"""

from __future__ import annotations

import csv
import math
import os
import queue
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from reiqa.errors import ImageLoadError
from reiqa.io import IMAGE_SUFFIXES, LOAD_ERROR_REASONS, decode_image, load_image
from tests.fuzz_corpus import MAX_FILE_BYTES, RARE_FORMATS, make_corpus, make_rare_corpus

SEED = int(os.environ.get("REIQA_FUZZ_SEED", "0"))
N_FILES = 1000
PER_FILE_LIMIT_S = 10.0
"""Longest one ``load_image`` call may take: a bound on hangs, not a speed goal (a 3.5 KB WebP
that declares 16383 x 16383 pixels, under the default pixel limit, makes Pillow allocate about
1 GB before it fails: 0.6-4 s on a loaded 2-core machine)."""
HANG_LIMIT_S = 60.0
"""After this long on one file the in-process check gives up on it and fails, naming the file."""
CLI_TIMEOUT_S = 600
CLI_BATCH_SIZE = 256
"""Files per batch window: images of one size within a window share a model call, so with the
corpus's mixed sizes this runs about 4x faster than the default 8 (40 s instead of 160 s)."""
# Pillow's warnings about corrupt files ("Corrupt EXIF data", ...), which reiqa may pass on with the path
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

REASONS = LOAD_ERROR_REASONS


@dataclass
class Outcome:
    """What ``load_image`` did with one corpus file."""

    name: str
    seconds: float
    result: str  # "loaded", "ImageLoadError(<reason>)", or the unexpected exception type
    problem: str | None = None  # why this outcome breaks the contract


@dataclass
class LoadReport:
    """The in-process pass over the corpus."""

    outcomes: list[Outcome]
    hung_on: str | None  # the file load_image was still busy with after HANG_LIMIT_S

    @property
    def slowest(self) -> str:
        """The slowest file and its time, for the log."""
        if not self.outcomes:
            return "none loaded"
        o = max(self.outcomes, key=lambda o: o.seconds)
        return f"{o.name} {o.seconds:.2f} s"


def _tag(text: str) -> str:
    return f"[fuzz seed {SEED}] {text}"


def _announce(capsys: pytest.CaptureFixture[str], text: str) -> None:
    """Print to the terminal even when pytest captures output."""
    with capsys.disabled():
        print(f"\n{_tag(text)}", flush=True)


def _check_one(path: Path, data: bytes | None = None) -> Outcome:
    """``load_image(path)``, or ``decode_image(data, path.name)`` when ``data`` is given."""
    label = str(path) if data is None else path.name
    start = time.perf_counter()
    problem = None
    try:
        image = load_image(path) if data is None else decode_image(data, path.name)
    except ImageLoadError as exc:
        result = f"ImageLoadError({exc.reason})"
        if exc.reason not in REASONS:
            problem = f"undocumented reason {exc.reason!r}: {exc}"
        elif not str(exc).startswith(label):
            problem = f"message does not start with the path: {exc}"
    except Exception as exc:
        result = type(exc).__name__
        where = traceback.extract_tb(exc.__traceback__)[-1]
        problem = f"{type(exc).__name__}: {exc} (raised at {Path(where.filename).name}:{where.lineno})"
    else:
        result = "loaded"
        if not isinstance(image, torch.Tensor) or not image.is_floating_point():
            problem = f"not a float tensor: {type(image).__name__} {getattr(image, 'dtype', '')}"
        elif image.ndim != 3 or image.shape[0] != 3 or image.shape[1] < 1 or image.shape[2] < 1:
            problem = f"shape {tuple(image.shape)} is not (3, H, W)"
        elif not bool(torch.isfinite(image).all()) or image.min() < 0 or image.max() > 1:
            problem = f"values outside [0, 1]: min {image.min().item()}, max {image.max().item()}"
    return Outcome(path.name, time.perf_counter() - start, result, problem)


def _load_all(paths: list[Path]) -> LoadReport:
    """``load_image`` on every file, in a daemon thread so that a hang fails instead of blocking."""
    results: queue.Queue[Outcome] = queue.Queue()
    current = [""]

    def work() -> None:
        for path in paths:
            current[0] = path.name
            results.put(_check_one(path))

    threading.Thread(target=work, daemon=True, name="fuzz-load").start()
    outcomes = []
    for _ in paths:
        try:
            outcomes.append(results.get(timeout=HANG_LIMIT_S))
        except queue.Empty:
            return LoadReport(outcomes, hung_on=current[0])
    return LoadReport(outcomes, hung_on=None)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_corpus(tmp_path_factory.mktemp("fuzz"), n=N_FILES, seed=SEED)


@pytest.fixture(scope="module")
def load_report(corpus: list[Path]) -> LoadReport:
    return _load_all(corpus)


def test_the_corpus_is_deterministic_small_and_found_by_a_folder_scan(tmp_path: Path) -> None:
    a = make_corpus(tmp_path / "a", n=150, seed=SEED)
    b = make_corpus(tmp_path / "b", n=150, seed=SEED)
    c = make_corpus(tmp_path / "c", n=150, seed=SEED + 1)
    assert [p.name for p in a] == [p.name for p in b], _tag("names differ between two runs")
    assert all(p.read_bytes() == q.read_bytes() for p, q in zip(a, b, strict=True)), _tag("bytes differ")
    assert [p.read_bytes() for p in a] != [p.read_bytes() for p in c], _tag("another seed, same corpus")
    for p in a:
        assert p.name.isascii() and p.suffix.lower() in IMAGE_SUFFIXES, _tag(p.name)
        assert p.stat().st_size < MAX_FILE_BYTES, _tag(p.name)


def test_load_image_loads_or_raises_image_load_error_within_the_time_limit(
    corpus: list[Path], load_report: LoadReport, capsys: pytest.CaptureFixture[str]
) -> None:
    report = load_report
    assert report.hung_on is None, _tag(f"load_image ran more than {HANG_LIMIT_S} s on {report.hung_on}")
    counts = Counter(o.result for o in report.outcomes)
    _announce(
        capsys, f"load_image on {len(corpus)} files: {dict(sorted(counts.items()))}; slowest {report.slowest}"
    )
    offenders = [o for o in report.outcomes if o.problem]
    assert not offenders, _tag(
        f"{len(offenders)} of {len(corpus)} files broke the load_image contract:\n"
        + "\n".join(f"  {o.name}: {o.problem}" for o in offenders)
    )
    too_slow = sorted((o for o in report.outcomes if o.seconds >= PER_FILE_LIMIT_S), key=lambda o: -o.seconds)
    assert not too_slow, _tag(
        f"{len(too_slow)} files took {PER_FILE_LIMIT_S} s or more to load: "
        + ", ".join(f"{o.name} {o.seconds:.2f} s" for o in too_slow)
    )


def _finite(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def test_reiqa_score_scores_or_reports_every_file_without_a_traceback(
    corpus: list[Path], load_report: LoadReport, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = corpus[0].parent
    out_csv = tmp_path / "scores.csv"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "reiqa",
                "score",
                str(folder),
                "--output",
                str(out_csv),
                "--device",
                "cpu",
                "--batch-size",
                str(CLI_BATCH_SIZE),
                "--backend",
                "torch",  # this test is about inputs, not engines (auto would pick OpenVINO here)
            ],
            capture_output=True,
            text=True,
            errors="replace",
            env=env,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(_tag(f"reiqa score did not finish {len(corpus)} files in {exc.timeout} s"))
    seconds = time.perf_counter() - start
    stderr_tail = proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr, _tag(f"traceback from reiqa score:\n{stderr_tail}")
    assert proc.returncode in (0, 3), _tag(f"exit status {proc.returncode}:\n{stderr_tail}")
    with out_csv.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames is not None and {"path", "score", "error"} <= set(reader.fieldnames), _tag(
            f"columns {reader.fieldnames}"
        )
        rows = list(reader)

    names = [Path(row["path"]).name for row in rows]
    expected = {p.name for p in corpus}
    repeated = sorted(n for n, k in Counter(names).items() if k > 1)
    missing, extra = sorted(expected - set(names)), sorted(set(names) - expected)
    assert not (repeated or missing or extra) and len(rows) == len(corpus), _tag(
        f"{len(rows)} rows for {len(corpus)} files; missing {missing[:20]} ({len(missing)}), "
        f"extra {extra[:20]}, repeated {repeated[:20]}"
    )
    scored = [row for row in rows if _finite(row["score"]) and not row["error"]]
    reported = [row for row in rows if not row["score"] and row["error"].strip()]
    neither = [row for row in rows if row not in scored and row not in reported]
    loaded = {o.name for o in load_report.outcomes if o.result == "loaded"}
    scored_names = {Path(row["path"]).name for row in scored}
    _announce(
        capsys,
        f"reiqa score: {len(corpus)} files, {len(scored)} scored, {len(reported)} reported, "
        f"exit {proc.returncode}, {seconds:.0f} s; load_image loaded {len(loaded)} "
        f"({len(loaded ^ scored_names)} differ from the scored set); slowest load {load_report.slowest}",
    )
    assert not neither, _tag(
        f"{len(neither)} rows have neither a finite score nor an error (or both): "
        + "; ".join(f"{r['path']}: score={r['score']!r} error={r['error']!r}" for r in neither[:20])
    )
    assert proc.returncode == (3 if reported else 0), _tag(
        f"exit {proc.returncode} with {len(reported)} reported"
    )


# -- the rarer formats ----------------------------------------------------------------------------

RARE_TIME_LIMIT_S = 20.0
"""The whole rare corpus, loaded twice (about 1 s on a loaded 2-core machine)."""


def _expected_when_valid(path: Path) -> str:
    """What an unchanged rare-corpus file (any suffix) must give: its format decides."""
    fmt = path.name.split("-")[1]
    if "-unknown-fourcc-" in path.name:
        return "ImageLoadError(unreadable)"  # NotImplementedError from Pillow's DDS plugin
    if fmt in RARE_FORMATS:
        return "loaded"
    return "ImageLoadError(not-an-image)" if fmt == "im" else "ImageLoadError(unsupported-format)"


def test_the_rare_corpus_is_deterministic(tmp_path: Path) -> None:
    a = make_rare_corpus(tmp_path / "a", seed=SEED)
    b = make_rare_corpus(tmp_path / "b", seed=SEED)
    assert [p.name for p in a] == [p.name for p in b], _tag("names differ between two runs")
    assert all(p.read_bytes() == q.read_bytes() for p, q in zip(a, b, strict=True)), _tag("bytes differ")


def test_rare_formats_load_or_raise_image_load_error_from_files_and_uploads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = make_rare_corpus(tmp_path, seed=SEED)
    spawned: list[object] = []

    def spawn(*args: object, **kwargs: object) -> None:
        spawned.append(args)
        raise OSError("decoding an image must not run a program (Ghostscript)")

    monkeypatch.setattr(subprocess, "Popen", spawn)
    start = time.perf_counter()
    outcomes = [(_check_one(p), _check_one(p, p.read_bytes())) for p in corpus]
    seconds = time.perf_counter() - start
    counts = Counter(from_file.result for from_file, _ in outcomes)
    _announce(capsys, f"rare formats, {len(corpus)} files: {dict(sorted(counts.items()))}; {seconds:.1f} s")

    offenders = [o for pair in outcomes for o in pair if o.problem]
    assert not offenders, _tag(
        f"{len(offenders)} outcomes broke the contract:\n"
        + "\n".join(f"  {o.name}: {o.problem}" for o in offenders)
    )
    # A damaged file may fare otherwise from memory: Pillow's plugins seek differently in a file and
    # in a BytesIO (PCX looks for its palette 769 bytes before the end: EINVAL in a shorter file).
    wrong = [
        f"{a.name}: file {a.result}, bytes {b.result}, expected {_expected_when_valid(corpus[i])}"
        for i, (a, b) in enumerate(outcomes)
        if corpus[i].name.removesuffix(corpus[i].suffix).endswith("-valid")
        and not a.result == b.result == _expected_when_valid(corpus[i])
    ]
    assert not wrong, _tag("valid files, whatever their suffix:\n" + "\n".join(wrong))
    assert not spawned, _tag(f"a decoder tried to run a program: {spawned[:3]}")
    assert counts["loaded"] > len(corpus) // 5, _tag(f"too few files loaded to mean anything: {counts}")
    assert seconds < RARE_TIME_LIMIT_S, _tag(f"{seconds:.1f} s for {len(corpus)} files")
