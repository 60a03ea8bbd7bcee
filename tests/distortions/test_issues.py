"""The table of issues: every catalogue type in exactly one issue family, severities that agree
with the catalogue's own notes."""

from __future__ import annotations

import pytest

from reiqa.distortions import BY_NAME, CATALOG, NUM_LEVELS
from reiqa.distortions.issues import ISSUES, NONE, TABLE, issue_of, label, types_of
from reiqa.errors import UnknownNameError


def test_every_catalogue_type_is_in_exactly_one_issue() -> None:
    assert sorted(TABLE) == sorted(BY_NAME)  # every type has a row, and no row names another type
    members = [name for issue in ISSUES for name in types_of(issue)]
    assert sorted(members) == sorted(BY_NAME)  # each type in one family, none twice
    assert types_of(NONE) == []


def test_the_families_of_the_issue() -> None:
    """The grouping docs/architecture.md and the README state."""
    expected = {
        "blur": {
            "gaussian_blur",
            "lens_blur",
            "motion_blur",
            "denoise",
            "resize_bicubic",
            "resize_bilinear",
            "resize_lanczos",
        },
        "noise": {"white_noise", "color_noise", "impulse_noise", "multiplicative_noise"},
        "compression": {"jpeg"},
        "exposure": {"brighten", "darken", "mean_shift"},
        "color": {"color_diffusion", "color_shift", "hsv_saturation", "lab_saturation"},
        "contrast": {"contrast"},
        "artifacts": {"color_block", "pixelate", "resize_nearest", "jitter", "non_eccentricity", "sharpen"},
    }
    assert {issue: set(types_of(issue)) for issue in ISSUES if issue != NONE} == expected


@pytest.mark.parametrize("spec", CATALOG.values(), ids=lambda s: s.name)
def test_severity_is_zero_exactly_at_the_identity_levels(spec) -> None:
    row = TABLE[spec.name]
    assert len(row.severity) == NUM_LEVELS and all(0.0 <= v <= 1.0 for v in row.severity)
    assert {lv for lv in range(NUM_LEVELS) if row.severity[lv] == 0} == set(spec.identity_levels)
    for level in range(NUM_LEVELS):
        issue, severity = label(spec.id, level)
        assert issue == (NONE if level in spec.identity_levels else row.issue)
        assert severity == row.severity[level]
    if spec.monotone:  # a stronger level is never less severe
        assert list(row.severity) == sorted(row.severity)


def test_lookups_take_ids_and_names_and_refuse_others() -> None:
    assert issue_of(7).issue == issue_of("jpeg").issue == issue_of("imcompressjpeg").issue == "compression"
    assert label("mean_shift", 2) == (NONE, 0.0) and label("mean_shift", 0) == ("exposure", 1.0)
    with pytest.raises(ValueError, match="level"):
        label("jpeg", 5)
    with pytest.raises(UnknownNameError):
        types_of("haze")


def test_the_catalogue_listing_shows_each_types_issue() -> None:
    from reiqa.sheet import catalogue_table

    lines = catalogue_table().splitlines()
    assert lines[0].split()[:4] == ["id", "name", "family", "issue"]
    for line, spec in zip(lines[1:], CATALOG.values(), strict=True):
        assert line.split()[1:4] == [spec.name, spec.family, TABLE[spec.name].issue]
