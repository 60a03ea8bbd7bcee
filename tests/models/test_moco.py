"""MoCo parts against hand-written references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reiqa.models.moco import Encoder, KeyQueue, MoCo, batch_negative_mask, ema_update, info_nce


def test_info_nce_matches_a_hand_computed_loss() -> None:
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(4, 8, generator=g), dim=1)
    k = F.normalize(torch.randn(4, 8, generator=g), dim=1)
    queue = F.normalize(torch.randn(6, 8, generator=g), dim=1)
    loss, acc = info_nce(q, k, queue, 0.2)
    expected = []
    for i in range(4):
        pos = math.exp(float(q[i] @ k[i]) / 0.2)
        neg = sum(math.exp(float(q[i] @ queue[j]) / 0.2) for j in range(6))
        expected.append(-math.log(pos / (pos + neg)))
    assert abs(loss.item() - sum(expected) / 4) < 1e-5
    assert 0 <= acc.item() <= 1


def test_batch_negatives_enter_the_denominator_only_where_masked() -> None:
    g = torch.Generator().manual_seed(1)
    q = F.normalize(torch.randn(4, 8, generator=g), dim=1)
    k = F.normalize(torch.randn(4, 8, generator=g), dim=1)
    queue = F.normalize(torch.randn(3, 8, generator=g), dim=1)
    mask = batch_negative_mask(torch.tensor([0, 0, 1, 1]), "queue+same-image")
    loss, _ = info_nce(q, k, queue, 0.5, batch_keys=k, batch_mask=mask)
    # same as the queue-only loss with the partner's key appended to the queue, per query
    partner = [1, 0, 3, 2]
    manual = torch.stack(
        [
            info_nce(q[i : i + 1], k[i : i + 1], torch.cat([queue, k[partner[i] : partner[i] + 1]]), 0.5)[0]
            for i in range(4)
        ]
    ).mean()
    assert abs(loss.item() - manual.item()) < 1e-6


def test_negative_masks() -> None:
    ids = torch.tensor([0, 0, 1])
    assert batch_negative_mask(ids, "queue") is None
    every = batch_negative_mask(ids, "queue+batch")
    assert every.tolist() == [[False, True, True], [True, False, True], [True, True, False]]
    same = batch_negative_mask(ids, "queue+same-image")
    assert same.tolist() == [[False, True, False], [True, False, False], [False, False, False]]
    two_ranks = batch_negative_mask(ids, "queue+batch", world=2, rank_=1)
    assert two_ranks.shape == (3, 6) and not two_ranks[0, 3] and two_ranks[0, 0]
    with pytest.raises(ValueError, match="negatives"):
        batch_negative_mask(ids, "everything")


def test_queue_is_fifo_with_wrap_around_and_a_saved_pointer() -> None:
    queue = KeyQueue(5, 2)
    for start in (0, 3):
        queue.push(torch.arange(start, start + 3).float().view(3, 1).expand(3, 2))
    # 6 keys into 5 slots: 5 overwrote 0
    assert queue.keys[:, 0].tolist() == [5.0, 1.0, 2.0, 3.0, 4.0]
    assert int(queue.ptr) == 1
    assert "ptr" in queue.state_dict() and "keys" in queue.state_dict()
    queue.push(torch.full((7, 2), 9.0))  # more keys than slots
    assert (queue.keys == 9).all()


def test_ema_moves_parameters_but_not_buffers() -> None:
    online, target = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        online.weight.fill_(2.0)
        online.running_mean.fill_(5.0)
    ema_update(online, target, 0.9)
    assert torch.allclose(target.weight, torch.full((3,), 1.1))
    assert (target.running_mean == 0).all()


def test_moco_keys_have_no_gradient_and_shapes_match() -> None:
    torch.manual_seed(0)
    model = MoCo(Encoder("resnet18", proj_dim=16), queue_size=32, bn_groups=2)
    x = torch.rand(4, 3, 32, 32)
    q, k = model(x, x, generator=torch.Generator().manual_seed(0))
    assert q.shape == k.shape == (4, 16)
    assert q.requires_grad and not k.requires_grad
    assert torch.allclose(q.norm(dim=1), torch.ones(4), atol=1e-5)
    assert all(not p.requires_grad for p in model.key.parameters())


def test_grouped_bn_equals_running_each_group_alone() -> None:
    torch.manual_seed(0)
    model = MoCo(Encoder("resnet18", proj_dim=8), queue_size=8, bn_groups=2, shuffle_bn=False)
    x = torch.rand(4, 3, 32, 32)
    q, k = model(x, x)
    torch.manual_seed(0)
    ref = MoCo(Encoder("resnet18", proj_dim=8), queue_size=8, bn_groups=1, shuffle_bn=False)
    halves = torch.cat([ref.query(x[:2]), ref.query(x[2:])])
    torch.testing.assert_close(q, halves)
    torch.testing.assert_close(k, torch.cat([ref.key(x[:2]), ref.key(x[2:])]))


def test_content_encoder_normalises_its_input() -> None:
    enc = Encoder("resnet18", input_norm="imagenet")
    x = torch.full((1, 3, 8, 8), 0.485)
    assert enc.norm(x)[0, 0].abs().max() < 1e-6
    with pytest.raises(ValueError, match="normalisation"):
        Encoder("resnet18", input_norm="zscore")
