"""``POST /diagnose``: ``/score``'s answer with the issue, its severity and every issue's
probability, from the same batches; a clear 501 for a model without a diagnosis head."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import reiqa
from reiqa.io import save_image
from tests.conftest import textured_images
from tests.service.conftest import httpx


@pytest.fixture(scope="module")
def head_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reiqa.diagnose.fit import fit_diagnosis

    root = tmp_path_factory.mktemp("diagnose-service")
    for i, image in enumerate(textured_images(2, 48, 64, seed=21)):
        save_image(image, root / "train" / f"{i}.png")
    return fit_diagnosis(
        [root / "train"], root / "model", model=tiny_model, crop=32, pristine=1, device="cpu"
    ).out


def _post(app, requests: list[tuple[str, list[tuple[str, bytes]]]]) -> list[httpx.Response]:
    """The requests, in order, to the app in process (its batcher started and stopped)."""

    async def go() -> list[httpx.Response]:
        batcher = app.app.state.batcher
        await batcher.start()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                out = []
                for path, files in requests:
                    if path.startswith("GET "):
                        out.append(await client.get(path[4:]))
                    else:
                        out.append(await client.post(path, files=[("file", f) for f in files]))
                return out
        finally:
            await batcher.stop()

    return asyncio.run(go())


def test_diagnose_answers_like_score_with_the_diagnosis(head_model: Path, photos: dict[str, Path]) -> None:
    from reiqa.service.app import create_app

    model = reiqa.load(head_model)
    app = create_app(model)
    files = [(n, photos[n].read_bytes()) for n in ("photo0.png", "notes.jpg", "photo3.jpg")]
    card, scored, diagnosed = _post(app, [("GET /model", []), ("/score", files), ("/diagnose", files)])
    assert card.json()["diagnosis"]["classes"] == list(model.diagnosis.classes)
    assert scored.status_code == diagnosed.status_code == 200
    assert [set(r) for r in scored.json()["results"]] == [{"filename", "score", "error"}] * 3
    results = diagnosed.json()["results"]
    assert [r["filename"] for r in results] == ["photo0.png", "notes.jpg", "photo3.jpg"]
    fields = {"filename", "score", "issue", "severity", "probabilities", "error"}
    assert all(set(r) == fields for r in results)
    for plain, full, name in zip(
        scored.json()["results"], results, ("photo0.png", "notes.jpg", "photo3.jpg"), strict=True
    ):
        assert plain["score"] == full["score"] and plain["error"] == full["error"]
        if name == "notes.jpg":
            assert full["issue"] is full["severity"] is full["probabilities"] is None
            assert full["error"].startswith("notes.jpg")
            continue
        record = model.diagnose(photos[name])
        assert full["issue"] == record.issue and full["severity"] == pytest.approx(record.severity, abs=1e-6)
        assert sum(full["probabilities"].values()) == pytest.approx(1.0)


def test_a_model_without_a_head_answers_501_and_still_scores(
    tiny_model: Path, photos: dict[str, Path]
) -> None:
    from reiqa.service.app import create_app

    app = create_app(reiqa.load(tiny_model))
    files = [("photo0.png", photos["photo0.png"].read_bytes())]
    card, diagnosed, scored = _post(app, [("GET /model", []), ("/diagnose", files), ("/score", files)])
    assert card.json()["diagnosis"] is None
    assert diagnosed.status_code == 501
    assert "no diagnosis head" in diagnosed.json()["error"] and "fit-diagnosis" in diagnosed.json()["error"]
    assert scored.status_code == 200 and scored.json()["results"][0]["score"] is not None


def test_the_page_asks_for_diagnoses_when_the_model_has_a_head() -> None:
    from importlib import resources

    page = resources.files("reiqa.service").joinpath("page.html").read_text(encoding="utf-8")
    assert "card.diagnosis" in page and '"diagnose"' in page and "severity" in page


def test_a_batch_of_both_kinds_runs_the_head_on_the_diagnose_images_alone(
    head_model: Path, photos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from reiqa.diagnosis import DiagnosisRecord
    from reiqa.inference import pipeline
    from reiqa.outputs import ScoreRecord
    from reiqa.service.scoring import score_pairs

    model = reiqa.load(head_model)
    tiled: list[int] = []
    real = pipeline.head_on_tiles

    def counted(features, head, images):
        tiled.append(len(images))
        return real(features, head, images)

    monkeypatch.setattr(pipeline, "head_on_tiles", counted)
    images = [model.prepare(photos[n]) for n in ("photo0.png", "photo3.jpg", "photo0.png")]
    records = score_pairs(model)([("a", images[0], False), ("b", images[1], True), ("c", images[2], False)])
    assert [r.path for r in records] == ["a", "b", "c"] and tiled == [1]
    assert type(records[0]) is type(records[2]) is ScoreRecord and isinstance(records[1], DiagnosisRecord)
    assert records[0].score == pytest.approx(records[2].score, abs=1e-9)
    assert records[1].score == pytest.approx(model.score(photos["photo3.jpg"]), abs=1e-9)
