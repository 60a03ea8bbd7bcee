"""reiqa finetune: batches and losses never mix databases, learning happens, resume is exact, the
output is a model folder whose step 0 scores what the starting model scores, errors name the
cause."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import reiqa
from reiqa.errors import ConfigError, DatasetError, UnknownNameError
from reiqa.inference import ScoreSpec, assemble
from reiqa.io import save_image
from reiqa.models.backbones import build_backbone
from reiqa.models.checkpoints import load_checkpoint
from reiqa.regress import QualityRegressor
from reiqa.train.finetune import Database, FinetuneConfig, config_from_options, run
from reiqa.train.finetune.data import DatabaseBatches, collate, load_rows, random_crop
from reiqa.train.finetune.loop import build_state, train_step
from reiqa.train.finetune.scorer import (
    OutputScale,
    degradation_loss,
    export_model,
    mse_loss,
    ranking_loss,
    scorer_from_model,
)
from tests.conftest import save_tiny_bundle, textured_images

runner = CliRunner()
N = 10  # images per database


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: these tiny models are dominated by thread synchronisation, which a
    CPU busy with other work makes 10-20 times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _photos(n: int, seed: int) -> list[torch.Tensor]:
    """Photos of several sizes (two smaller than a 48 px crop) whose quality is their brightness."""
    images = textured_images(n, 56, 72, seed=seed)
    out = []
    for i in range(n):
        image = images[i] * (0.35 + 0.06 * i)
        out.append(image[:, :40, :44] if i % 5 == 0 else image)
    return [im.clamp(0, 1) for im in out]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """A tiny model folder (the tests' ResNet-18 quality encoder, scores on 0..100), a CLIVE in
    its simple layout (MOS 0..100) and a CSV database on another scale (0..1, the last rows
    written as a 'test' part, which fine-tuning never reads)."""
    root = tmp_path_factory.mktemp("finetune")
    model = save_tiny_bundle(root / "model")
    (root / "clive" / "images").mkdir(parents=True)
    lines = ["image,mos,mos_std"]
    for i, image in enumerate(_photos(N, seed=1)):
        save_image(image, root / "clive" / "images" / f"{i}.png")
        lines.append(f"{i}.png,{10.0 + 8 * i},5.0")
    (root / "clive" / "mos.csv").write_text("\n".join(lines) + "\n")
    (root / "mine").mkdir()
    lines = ["image,score,split"]
    for i, image in enumerate(_photos(N + 3, seed=2)):
        save_image(image, root / "mine" / f"p{i}.png")
        lines.append(f"p{i}.png,{0.05 + 0.07 * i},{'test' if i >= N else 'train'}")
    (root / "mine" / "scores.csv").write_text("\n".join(lines) + "\n")
    return {"model": model, "clive": root / "clive", "csv": root / "mine" / "scores.csv"}


def _cfg(data: dict[str, Path], **changes) -> FinetuneConfig:
    cfg = FinetuneConfig(
        model=str(data["model"]),
        databases=(Database("clive", str(data["clive"])),),
        val=4,
        crop=48,
        batch_size=3,
        epochs=2,
        degrade_images=1,
        workers=0,
        log_every=1,
        channels_last=False,
        half=False,
    )
    return cfg.replace(**changes)


# -- batches and losses ---------------------------------------------------------------------------


def test_each_batch_holds_one_database_and_an_epoch_covers_every_row_once() -> None:
    train = [np.arange(0, 20, 2), np.arange(100, 107)]  # 10 and 7 rows: 3 + 2 batches of 3
    sampler = DatabaseBatches(train, batch_size=3, seed=4, epoch=1)
    batches = list(sampler)
    assert len(batches) == DatabaseBatches.steps_per_epoch([10, 7], 3) == 5
    seen = []
    for batch in batches:
        databases = {d for d, _, _ in batch}
        assert len(databases) == 1 and len(batch) == 3
        (d,) = databases
        assert all(row in train[d] for _, row, _ in batch)
        seen += [row for _, row, _ in batch]
    assert len(seen) == len(set(seen))  # no row twice in an epoch
    assert {d for d, _ in sampler.plan()} == {0, 1}  # both databases take turns
    # a resumed epoch continues the same plan; another epoch draws another one
    assert list(DatabaseBatches(train, batch_size=3, seed=4, epoch=1, start=2)) == batches[2:]
    assert list(DatabaseBatches(train, batch_size=3, seed=4, epoch=2)) != batches
    with pytest.raises(ConfigError, match="mixes databases"):
        collate([(torch.zeros(3, 8, 8), 0, 1), (torch.zeros(3, 8, 8), 1, 2)])


def test_the_ranking_loss_compares_pairs_of_one_database_only() -> None:
    scores = torch.tensor([0.3, -0.2, 1.0, 0.1, 0.5])
    z = torch.tensor([1.0, -1.0, 0.2, 2.0, -0.5])
    groups = torch.tensor([0, 0, 0, 1, 1])
    within = ranking_loss(scores, z, margin=0.5, groups=groups)
    # moving one database's scores and z-scores far away changes nothing: no pair crosses
    shifted = ranking_loss(scores + 100 * groups, z - 50 * groups, margin=0.5, groups=groups)
    assert torch.isclose(within, shifted)
    # it is the mean over the pairs of each database
    a = ranking_loss(scores[:3], z[:3], margin=0.5)
    b = ranking_loss(scores[3:], z[3:], margin=0.5)
    assert torch.isclose(within, (3 * a + 1 * b) / 4)  # 3 ordered pairs in the first, 1 in the second
    # pairs ordered right by more than their gap (up to the margin) cost nothing
    assert ranking_loss(torch.tensor([2.0, 1.0, 0.0]), torch.tensor([1.0, 0.5, 0.0]), margin=0.5) == 0
    assert ranking_loss(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.0]), margin=0.5) > 0
    assert mse_loss(z, z) == 0


def test_z_scores_are_per_database_so_raw_scales_never_meet(data) -> None:
    rows = load_rows(
        [Database("clive", str(data["clive"])), Database("csv", str(data["csv"]))],
        val_fraction=0.2,
        val=None,
        seed=0,
    )
    clive, mine = rows
    assert (clive.name, mine.name) == ("clive", "scores")
    assert len(clive.train) + len(clive.val) == N and len(mine.train) + len(mine.val) == N  # no test rows
    for r in rows:
        z = r.z(r.train)
        assert abs(z.mean()) < 1e-9 and abs(z.std() - 1) < 1e-9  # each on its own training rows
        assert set(r.train.tolist()).isdisjoint(r.val.tolist())
    assert list(mine.val) == list(
        load_rows([Database("csv", str(data["csv"]))], val_fraction=0.2, val=None, seed=0)[0].val
    )


def test_the_degradation_term_is_positive_when_a_degraded_copy_scores_higher() -> None:
    original = torch.tensor([0.0, 1.0])
    assert degradation_loss(original, torch.tensor([0.5, 0.0]), margin=0.2) == pytest.approx((0.7 + 0.0) / 2)
    assert degradation_loss(original, original - 1.0, margin=0.2) == 0
    assert degradation_loss(original[:0], original[:0], margin=0.2) == 0


def test_a_small_image_is_upscaled_to_the_crop_and_crops_are_seeded() -> None:
    image = textured_images(1, 30, 50)[0]
    a = random_crop(image, 40, torch.Generator().manual_seed(1))
    assert a.shape == (3, 40, 40)
    assert torch.equal(a, random_crop(image, 40, torch.Generator().manual_seed(1)))


# -- the model ------------------------------------------------------------------------------------


def test_step_zero_scores_what_the_model_scores_and_the_folder_round_trips(data, tmp_path) -> None:
    start = reiqa.load(data["model"])
    images = torch.stack(_photos(3, seed=5)[1:3])  # two 56 x 72 photos
    expected = start.score(images)
    scale = OutputScale(mean=40.0, std=20.0, sign=1.0)
    scorer = scorer_from_model(reiqa.load(data["model"]), scale)
    with torch.no_grad():
        z = scorer.eval()(images).numpy()
    np.testing.assert_allclose(40.0 + 20.0 * z, expected, rtol=1e-4, atol=1e-3)
    recipe = {"databases": [{"name": "x", "train_rows": 5}]}
    out = export_model(
        reiqa.load(data["model"]),
        scorer,
        tmp_path / "out",
        scale=scale,
        score_range=(0.0, 100.0),
        name="step 0",
        source="test",
        recipe=recipe,
        half=False,
    )
    again = reiqa.load(out)
    np.testing.assert_allclose(again.score(images), expected, rtol=1e-5, atol=1e-4)
    assert again.card.extra["finetune"] == recipe and again.name == "step 0"


def test_a_few_steps_learn_a_learnable_target(data) -> None:
    """Repeated steps on one batch whose z-scores are the crops' brightness: the loss falls and
    the batch's pairs get ordered."""
    cfg = _cfg(data, lr_head=3e-3, lr_encoder=3e-4, degrade_weight=0.0, warmup=0.0)
    state = build_state(cfg, reiqa.load(data["model"]), OutputScale(50.0, 20.0, 1.0), torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    crops = torch.stack([random_crop(im, 40, g) for im in _photos(6, seed=7)])
    brightness = crops.mean(dim=(1, 2, 3))
    z = (brightness - brightness.mean()) / brightness.std()
    results = [train_step(state, crops, z, factor=1.0, generator=g) for _ in range(4)]
    assert results[-1]["loss"] < 0.75 * results[0]["loss"], [r["loss"] for r in results]
    assert results[0]["accuracy"] < 0.5 < 0.9 < results[-1]["accuracy"], [r["accuracy"] for r in results]
    assert all(p.grad is not None for p in state.scorer.quality.parameters())  # end to end


# -- whole runs -------------------------------------------------------------------------------------


def test_a_killed_and_resumed_run_ends_with_the_same_weights(data, tmp_path) -> None:
    cfg = _cfg(data, val_at_start=False)
    straight = run(cfg, tmp_path / "straight", device="cpu", progress=False)
    assert straight.stopped == "finished" and straight.step == 4  # 2 epochs of 6 rows in batches of 3
    first = run(cfg.replace(max_steps=1), tmp_path / "resumed", device="cpu", progress=False)
    assert first.stopped == "max_steps" and first.step == 1
    run(cfg, tmp_path / "resumed", device="cpu", progress=False, resume=True)
    a = load_checkpoint(tmp_path / "straight" / "checkpoint")[1]
    b = load_checkpoint(tmp_path / "resumed" / "checkpoint")[1]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # the output is a model folder; its history names every validation and the rows are listed
    history = json.loads((tmp_path / "resumed" / "history.json").read_text())
    assert [v["step"] for v in history["validations"]] == [1, 2, 4]  # the stop, each epoch's end
    model = reiqa.load(tmp_path / "straight")
    assert np.isfinite(model.score(data["clive"] / "images" / "3.png"))
    assert model.card.extra["finetune"]["databases"][0]["train_rows"] == 6
    listed = (tmp_path / "straight" / "rows.csv").read_text().splitlines()
    assert listed[0] == "database,part,image,score" and len(listed) == 1 + N
    with pytest.raises(ConfigError, match="--resume"):
        run(cfg, tmp_path / "straight", device="cpu", progress=False)
    with pytest.raises(ConfigError, match="another recipe"):
        run(cfg.replace(seed=3), tmp_path / "resumed", device="cpu", progress=False, resume=True)


def test_an_unreadable_image_is_skipped_and_reported_and_a_time_limit_stops_cleanly(data, tmp_path) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    lines = ["image,score"]
    for i, image in enumerate(_photos(6, seed=3)):
        save_image(image, folder / f"{i}.png")
        lines.append(f"{i}.png,{i}")
    (folder / "scores.csv").write_text("\n".join(lines) + "\n")
    db = Database("csv", str(folder / "scores.csv"))
    # 4 training rows in one batch of 4: the first step meets the file broken here
    (rows,) = load_rows([db], val_fraction=0.2, val=2, seed=0)
    bad = rows.table.paths[int(rows.train[0])]
    bad.write_text("not a picture")
    cfg = _cfg(data, databases=(db,), val=2, batch_size=4, freeze=("quality",), time_limit=1e-9)
    with pytest.warns(UserWarning, match=bad.name):
        result = run(cfg, tmp_path / "run", device="cpu", progress=False)
    assert result.skipped == [str(bad)]
    assert json.loads((tmp_path / "run" / "history.json").read_text())["skipped"] == [str(bad)]
    assert result.stopped == "time_limit" and result.step == 1
    assert load_checkpoint(tmp_path / "run" / "checkpoint")[2]["step"] == 1


def test_bad_databases_are_refused_naming_the_cause(data, tmp_path) -> None:
    with pytest.raises(UnknownNameError, match=r"--db clivee=.*'clivee'.*close: \['clive'.*or 'csv'"):
        run(_cfg(data, databases=(Database("clivee", str(data["clive"])),)), tmp_path / "a", device="cpu")
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match=f"{missing}: no such folder"):
        run(_cfg(data, databases=(Database("clive", str(missing)),)), tmp_path / "b", device="cpu")
    with pytest.raises(ConfigError, match="NAME=ROOT"):
        config_from_options(["clive"])
    with pytest.raises(ConfigError, match="unknown field"):
        config_from_options([f"clive={data['clive']}"], overrides=["nonsense=1"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# -- the command line -------------------------------------------------------------------------------


def test_finetune_runs_from_the_command_line_and_its_folder_scores(data, tmp_path) -> None:
    from reiqa.cli import app

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    regressor = QualityRegressor(alphas=(1.0,)).fit(rng.normal(size=(12, 2048)), rng.uniform(0, 100, 12))
    two = assemble(
        build_backbone("resnet18"),
        build_backbone("resnet18"),
        regressor,
        quality_arch="resnet18",
        content_arch="resnet18",
        score=ScoreSpec(range=(0, 100)),
    ).save(tmp_path / "two")
    out = tmp_path / "tuned"
    args = ["finetune", "--model", str(two), "--db", f"clive={data['clive']}", "--db", f"csv={data['csv']}"]
    args += ["--out", str(out), "--crop", "32", "--batch-size", "3", "--max-steps", "2", "--val", "3"]
    args += ["--freeze", "content", "--workers", "0", "--no-progress", "--set", "degrade_images=1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "model folder" in result.output and "clive" in result.output
    cfg = FinetuneConfig.from_json(out / "finetune.json")
    assert cfg.freeze == ("content",) and len(cfg.databases) == 2
    scored = runner.invoke(app, ["score", "--model", str(out), str(data["clive"] / "images" / "1.png")])
    assert scored.exit_code == 0, scored.output
    assert "1 scored, 0 failed" in scored.output


def test_the_command_lines_defaults_are_the_configs() -> None:
    import inspect

    from reiqa.cli import finetune

    defaults = {k: p.default for k, p in inspect.signature(finetune).parameters.items()}
    cfg = FinetuneConfig(databases=(Database("clive", "x"),))
    names = {"lr": "lr_encoder", "head_lr": "lr_head"}
    for option in ("model", "epochs", "batch_size", "crop", "val_fraction", "val", "lr", "head_lr"):
        assert defaults[option] == getattr(cfg, names.get(option, option)), option
    for option in ("degrade_weight", "max_steps", "time_limit", "amp", "workers", "seed"):
        assert defaults[option] == getattr(cfg, option), option
