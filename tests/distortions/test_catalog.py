from __future__ import annotations

import pytest
import torch

from reiqa.distortions import BY_NAME, CATALOG, NUM_LEVELS, get
from reiqa.errors import UnknownNameError


def test_catalog_has_26_types_with_unique_ids_names_and_five_levels() -> None:
    assert sorted(CATALOG) == list(range(1, 27))
    assert len(BY_NAME) == 26
    assert len({s.official for s in CATALOG.values()}) == 26
    for spec in CATALOG.values():
        assert len(spec.levels) == NUM_LEVELS
        assert all(0 <= lv < NUM_LEVELS for lv in spec.identity_levels)
        assert spec.family in {
            "blur",
            "color",
            "compression",
            "noise",
            "tone",
            "resize",
            "sharpness",
            "local",
        }


@pytest.mark.parametrize("spec", list(CATALOG.values()), ids=lambda s: s.name)
def test_every_op_runs_on_a_tiny_batch(spec) -> None:
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    params = {}
    if spec.sample is not None:
        g = torch.Generator().manual_seed(1)
        draws = [spec.sample(16, 16, spec.levels[i], g, x.device) for i in range(2)]
        params = {k: torch.stack([d[k] for d in draws]) for k in draws[0]}
    values = torch.tensor(spec.levels[:2], dtype=torch.float64)
    y = spec.op(x, values, params, compat=False)
    assert y.shape == x.shape and y.dtype == x.dtype


def test_lookup_by_id_name_official_name_and_digit_string() -> None:
    assert get(7).name == "jpeg"
    assert get("7").id == 7
    assert get("JPEG").id == 7
    assert get("imblurmotion").id == 26


def test_unknown_names_list_close_matches() -> None:
    with pytest.raises(UnknownNameError, match="gaussian_blur"):
        get("gausian_blur")
    with pytest.raises(KeyError, match=r"1\.\.26"):
        get(27)


def test_documented_identity_levels_leave_the_image_unchanged() -> None:
    from reiqa.distortions import apply

    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for spec in CATALOG.values():
        for level in spec.identity_levels:
            y = apply(x, spec.id, level)
            assert (y - x).abs().max() < 2e-2, (spec.name, level)
