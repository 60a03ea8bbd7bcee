"""LARS, build_optimizer and the learning-rate schedules."""

from __future__ import annotations

import io
import itertools
import math

import pytest
import torch
from torch import Tensor, nn

from reiqa.train.optim import LARS, OPTIMIZERS, build_optimizer, lr_at, official_lr_at, set_lr

LR, WD, MOM, ETA = 0.5, 0.01, 0.9, 0.001


def reference_lars(
    params: list[Tensor], grads: list[list[Tensor]], *, lr: float, wd: float, mom: float, eta: float
) -> list[Tensor]:
    """MoCo-v3 LARS written out plainly in float64, one step per entry of ``grads``."""
    ws = [p.detach().double().clone() for p in params]
    mus = [torch.zeros_like(w) for w in ws]
    for step_grads in grads:
        for i, (w, g) in enumerate(zip(ws, step_grads, strict=True)):
            g = g.double().clone()
            if w.ndim > 1:
                g = g + wd * w
                w_norm, g_norm = math.sqrt(float((w * w).sum())), math.sqrt(float((g * g).sum()))
                if w_norm > 0 and g_norm > 0:
                    g = g * (eta * w_norm / g_norm)
            mus[i] = mom * mus[i] + g
            ws[i] = w - lr * mus[i]
    return ws


def _case(kind: str, gen: torch.Generator) -> tuple[list[Tensor], list[list[Tensor]], float]:
    """Two params (3, 4) and (3,), three steps of gradients, and the weight decay to use."""
    w, b = torch.randn(3, 4, generator=gen), torch.randn(3, generator=gen)
    grads = [[torch.randn(3, 4, generator=gen), torch.randn(3, generator=gen)] for _ in range(3)]
    wd = WD
    if kind == "zero-weight":  # ||w|| = 0 at the first step: the trust ratio is skipped there
        w = torch.zeros(3, 4)
    elif kind == "zero-grad":  # ||g|| = 0 (no weight decay): the trust ratio is skipped, mu decays
        wd = 0.0
        grads[1][0] = torch.zeros(3, 4)
        grads[2] = [torch.zeros(3, 4), torch.zeros(3)]
    return [w, b], grads, wd


@pytest.mark.parametrize("kind", ["normal", "zero-weight", "zero-grad"])
def test_lars_matches_reference_for_three_steps(kind: str, device: torch.device) -> None:
    init, grads, wd = _case(kind, torch.Generator().manual_seed(0))
    params = [nn.Parameter(t.clone().to(device)) for t in init]
    opt = LARS(params, lr=LR, weight_decay=wd, momentum=MOM, trust_coefficient=ETA)
    for step_grads in grads:
        for p, g in zip(params, step_grads, strict=True):
            p.grad = g.to(device)
        opt.step()
    expected = reference_lars(init, grads, lr=LR, wd=wd, mom=MOM, eta=ETA)
    for p, e in zip(params, expected, strict=True):
        torch.testing.assert_close(p.detach().cpu().double(), e, rtol=1e-5, atol=1e-6)
    assert all(torch.isfinite(p).all() for p in params)


def test_lars_leaves_biases_and_batchnorm_to_plain_momentum() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = LARS(model.parameters(), lr=1.0, weight_decay=0.1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for name, p in model.named_parameters():
        if p.ndim <= 1:  # no weight decay: a zero gradient leaves them exactly as they were
            assert torch.equal(p, before[name]), name
        else:  # weight decay reaches the matrix, scaled by the trust ratio to eta * ||w||
            delta = before[name] - p.detach()
            torch.testing.assert_close(delta.norm(), 0.001 * before[name].norm())
    # a non-zero gradient moves a bias by exactly lr * g (no trust ratio, no decay)
    opt = LARS(model.parameters(), lr=0.1, weight_decay=0.1)
    bias = model[0].bias
    start, grad = bias.detach().clone(), torch.tensor([1.0, -2.0, 3.0])
    bias.grad = grad
    opt.step()
    torch.testing.assert_close(bias.detach(), start - 0.1 * grad)


def _tiny_problem() -> tuple[nn.Linear, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(3)
    model = nn.Linear(4, 2)
    with torch.no_grad():
        model.weight.copy_(torch.randn(2, 4, generator=gen))
        model.bias.copy_(torch.randn(2, generator=gen))
    return model, torch.randn(8, 4, generator=gen), torch.randn(8, 2, generator=gen)


def test_lars_step_accepts_a_closure_and_returns_its_loss() -> None:
    model, x, y = _tiny_problem()
    opt = LARS(model.parameters(), lr=0.1)

    def closure() -> Tensor:
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    twin, _, _ = _tiny_problem()
    twin_opt = LARS(twin.parameters(), lr=0.1)
    for _ in range(3):
        loss = opt.step(closure)
        twin_opt.zero_grad()
        twin_loss = nn.functional.mse_loss(twin(x), y)
        twin_loss.backward()
        assert twin_opt.step() is None
        assert isinstance(loss, Tensor) and torch.equal(loss, twin_loss)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(p, q)


def test_lars_state_dict_resumes_exactly() -> None:
    model, x, y = _tiny_problem()
    opt = LARS(model.parameters(), lr=0.1)

    def one_step(m: nn.Module, o: torch.optim.Optimizer) -> None:
        o.zero_grad()
        nn.functional.mse_loss(m(x), y).backward()
        o.step()

    one_step(model, opt)
    twin = nn.Linear(4, 2)
    twin.load_state_dict(model.state_dict())
    twin_opt = LARS(twin.parameters(), lr=0.1)
    buffer = io.BytesIO()  # through bytes, as a checkpoint would (load_state_dict may alias the tensors)
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    twin_opt.load_state_dict(torch.load(buffer, weights_only=True))
    for _ in range(2):
        one_step(model, opt)
        one_step(twin, twin_opt)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -1.0}, "lr must be >= 0, got -1.0"),
        ({"lr": math.nan}, "lr must be >= 0, got nan"),
        ({"weight_decay": -0.1}, "weight_decay must be >= 0, got -0.1"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\), got 1.0"),
        ({"momentum": -0.5}, "momentum must be in"),
        ({"trust_coefficient": 0.0}, "trust_coefficient must be > 0, got 0.0"),
    ],
)
def test_lars_rejects_bad_hyperparameters(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LARS(nn.Linear(2, 2).parameters(), **kwargs)


def test_lars_checks_per_group_overrides() -> None:
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="momentum must be in"):
        LARS([{"params": [model.weight], "momentum": 2.0}, {"params": [model.bias]}])


def test_build_optimizer_sgd_decays_only_matrices() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    model[3].bias.requires_grad_(False)  # frozen parameters are left out
    opt = build_optimizer(model, name="sgd", lr=0.3, weight_decay=1e-4, momentum=0.9)
    assert type(opt) is torch.optim.SGD
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[3].weight)}
    assert {id(p) for p in no_decay["params"]} == {id(model[0].bias), id(model[1].weight), id(model[1].bias)}
    assert all(g["lr"] == 0.3 and g["momentum"] == 0.9 for g in opt.param_groups)
    # only matrices: a single group, no empty one
    only = build_optimizer([model[0].weight], name="sgd", lr=0.3, weight_decay=1e-4, momentum=0.9)
    assert len(only.param_groups) == 1


def test_build_optimizer_lars() -> None:
    model = nn.Linear(3, 2)
    opt = build_optimizer(model, name="lars", lr=0.2, weight_decay=1e-5, momentum=0.8)
    assert type(opt) is LARS and len(opt.param_groups) == 1
    group = opt.param_groups[0]
    assert (group["lr"], group["weight_decay"], group["momentum"], group["trust_coefficient"]) == (
        0.2,
        1e-5,
        0.8,
        0.001,
    )
    assert len(group["params"]) == 2


def test_build_optimizer_errors() -> None:
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match=r"unknown optimizer 'adam'; choose one of \['lars', 'sgd'\]"):
        build_optimizer(model, name="adam", lr=0.1, weight_decay=0.0, momentum=0.9)
    assert OPTIMIZERS == ("lars", "sgd")
    with pytest.raises(ValueError, match="momentum must be in"):
        build_optimizer(model, name="sgd", lr=0.1, weight_decay=0.0, momentum=1.5)
    with pytest.raises(ValueError, match="no parameter with requires_grad"):
        build_optimizer(model.requires_grad_(False), name="lars", lr=0.1, weight_decay=0.0, momentum=0.9)


def test_set_lr_sets_every_group() -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    opt = build_optimizer(model, name="sgd", lr=0.1, weight_decay=1e-4, momentum=0.9)
    set_lr(opt, 0.025)
    assert [g["lr"] for g in opt.param_groups] == [0.025, 0.025]
    for bad in (-0.1, math.inf, math.nan):
        with pytest.raises(ValueError, match="lr must be finite and >= 0"):
            set_lr(opt, bad)


def test_lr_at_warmup_then_cosine() -> None:
    kw = {"base_lr": 2.0, "total_steps": 100, "warmup_steps": 10, "min_lr_ratio": 0.05}
    lrs = [lr_at(s, **kw) for s in range(100)]
    assert lrs[0] == pytest.approx(0.2) and lrs[0] > 0
    assert all(a < b for a, b in itertools.pairwise(lrs[:10]))  # warm-up strictly up
    assert lrs[9] == 2.0  # warm-up ends exactly at base_lr
    assert all(a > b for a, b in itertools.pairwise(lrs[9:]))  # cosine strictly down
    assert lrs[-1] == pytest.approx(0.1, abs=1e-12)  # last step: exactly the minimum
    assert lrs[10 + 45 - 1] == pytest.approx((2.0 + 0.1) / 2)  # half-way through the cosine


def test_lr_at_edge_cases() -> None:
    no_warm = [lr_at(s, base_lr=1.0, total_steps=4, warmup_steps=0) for s in range(4)]
    assert no_warm[0] < 1.0 and no_warm[-1] == pytest.approx(0.0, abs=1e-12)
    all_warm = [lr_at(s, base_lr=1.0, total_steps=4, warmup_steps=4) for s in range(4)]
    assert all_warm == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(0, base_lr=1.0, total_steps=1, warmup_steps=0, min_lr_ratio=0.5) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"step": 10}, r"step must be in \[0, total_steps=10\), got 10"),
        ({"step": -1}, "step must be in"),
        ({"total_steps": 0}, "total_steps must be >= 1, got 0"),
        ({"warmup_steps": 11}, r"warmup_steps must be in \[0, total_steps=10\], got 11"),
        ({"base_lr": -1.0}, "base_lr must be >= 0, got -1.0"),
        ({"min_lr_ratio": 1.5}, r"min_lr_ratio must be in \[0, 1\], got 1.5"),
    ],
)
def test_lr_at_errors(kwargs: dict[str, float], match: str) -> None:
    args = {"step": 0, "base_lr": 1.0, "total_steps": 10, "warmup_steps": 2} | kwargs
    with pytest.raises(ValueError, match=match):
        lr_at(**args)


N_ITER = 7  # iterations per epoch in the official-schedule tests


@pytest.mark.parametrize(("epoch", "readme"), [(6, 11.35), (10, 10.24), (20, 6.01), (30, 1.77), (40, 0.012)])
def test_official_lr_matches_readme_values(epoch: int, readme: float) -> None:
    lr = official_lr_at((epoch - 1) * N_ITER, base_lr=12.0, steps_per_epoch=N_ITER, epochs=40)
    assert lr == pytest.approx(readme, abs=0.01)


def test_official_lr_warmup_and_per_epoch_steps() -> None:
    kw = {"base_lr": 12.0, "steps_per_epoch": N_ITER, "epochs": 40}
    lrs = [official_lr_at(s, **kw) for s in range(40 * N_ITER)]
    warm = lrs[: 5 * N_ITER]
    assert warm[0] == pytest.approx(0.01)
    assert all(a < b for a, b in itertools.pairwise(warm))  # per-iteration, strictly up
    slope = warm[1] - warm[0]
    assert warm[0] + slope * 5 * N_ITER == pytest.approx(11.544, abs=1e-3)  # warmup_to = lr(5)
    after = lrs[5 * N_ITER :]
    for e in range(35):  # constant inside each epoch, strictly down from one epoch to the next
        epoch_lrs = after[e * N_ITER : (e + 1) * N_ITER]
        assert len(set(epoch_lrs)) == 1
        if e:
            assert epoch_lrs[0] < after[(e - 1) * N_ITER]
    assert lrs[-1] == pytest.approx(12.0 * 0.1**3)


def test_official_lr_warms_up_ten_epochs_past_500() -> None:
    kw = {"base_lr": 1.0, "steps_per_epoch": 2, "epochs": 600}
    eta_min = 1e-3
    cosine = lambda e: eta_min + (1 - eta_min) * (1 + math.cos(math.pi * e / 600)) / 2  # noqa: E731
    assert official_lr_at(19, **kw) == pytest.approx(0.01 + 19 / 20 * (cosine(10) - 0.01))  # epoch 10
    assert official_lr_at(20, **kw) == pytest.approx(cosine(11))  # epoch 11


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"step": 40}, r"step must be in \[0, epochs \* steps_per_epoch = 40\), got 40"),
        ({"step": -1}, "step must be in"),
        ({"steps_per_epoch": 0}, "steps_per_epoch must be >= 1, got 0"),
        ({"epochs": 0}, "epochs must be >= 1, got 0"),
        ({"base_lr": 0.0}, "base_lr must be > 0, got 0.0"),
    ],
)
def test_official_lr_errors(kwargs: dict[str, float], match: str) -> None:
    args = {"step": 0, "base_lr": 12.0, "steps_per_epoch": 4, "epochs": 10} | kwargs
    with pytest.raises(ValueError, match=match):
        official_lr_at(**args)
