"""What each distortion type looks like to a photographer: the issue families of ``reiqa diagnose``.

One table that code (``reiqa.diagnose.fit`` labels its training renderings with it), the docs
and the tests read. Every type of the catalogue (``catalog.py``) has one row: the issue it
belongs to, and a severity in [0, 1] for each of its 5 levels. A severity of 0 marks a level that
leaves the image (nearly) unchanged (the catalogue's ``identity_levels``): such a rendering is
labelled ``none``, as a pristine photo is.

The families are not the catalogue's own ``family`` field (which groups the implementations:
``resize``, ``local``, ``tone``, ...); they group what a user sees and could fix: down-up resizing
with a smooth filter looks like blur, with nearest neighbour like blocks; denoising looks like
blur. JPEG 2000 and WebP, outside the catalogue, belong to ``compression``.

Severities: the catalogue's monotone types ramp 0.2 .. 1.0 over L0 .. L4 (:data:`RAMP`). The
others are written from what their levels do (docs/method.md §1.3): mean shift by |offset| / 0.15,
contrast by the distance of its curve parameter from the identity (|p + 0.2| / 0.5), denoise at
0.6 on every level (its blur dominates: about 20.5 dB at each), non-eccentricity at most 0.6 (a
weak, local distortion).
"""

from __future__ import annotations

from dataclasses import dataclass

from reiqa.distortions.catalog import BY_NAME, NUM_LEVELS, get
from reiqa.errors import UnknownNameError

__all__ = ["ISSUES", "NONE", "RAMP", "TABLE", "IssueSpec", "issue_of", "label", "types_of"]

NONE = "none"
#: the issues ``reiqa diagnose`` names, in the order of its probability columns
ISSUES = (NONE, "blur", "noise", "compression", "exposure", "color", "contrast", "artifacts")
#: the severity of a monotone type's levels L0 .. L4
RAMP = (0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class IssueSpec:
    """The issue of one catalogue type.

    Attributes:
        type: the catalogue's name of the type (``DistortionSpec.name``).
        issue: one of :data:`ISSUES` (never ``none``).
        severity: per level L0 .. L4, in [0, 1]; 0: the level leaves the image unchanged.
        looks_like: what a user sees.
    """

    type: str
    issue: str
    severity: tuple[float, float, float, float, float]
    looks_like: str

    def at(self, level: int) -> tuple[str, float]:
        """(issue, severity) of a rendering at ``level`` (0..4): ``none`` where the level is the
        identity."""
        severity = self.severity[level]
        return (NONE if severity == 0 else self.issue), severity


_ROWS = (
    IssueSpec("gaussian_blur", "blur", (0.0, 0.4, 0.6, 0.8, 1.0), "Gaussian blur (L0 is the identity)"),
    IssueSpec("lens_blur", "blur", RAMP, "out of focus"),
    IssueSpec("motion_blur", "blur", RAMP, "camera shake"),
    IssueSpec("denoise", "blur", (0.6, 0.6, 0.6, 0.6, 0.6), "smeared by denoising"),
    IssueSpec("resize_bicubic", "blur", RAMP, "upscaled (bicubic)"),
    IssueSpec("resize_bilinear", "blur", RAMP, "upscaled (bilinear)"),
    IssueSpec("resize_lanczos", "blur", RAMP, "upscaled (Lanczos)"),
    IssueSpec("white_noise", "noise", RAMP, "grain"),
    IssueSpec("color_noise", "noise", RAMP, "colour grain"),
    IssueSpec("impulse_noise", "noise", RAMP, "salt and pepper"),
    IssueSpec("multiplicative_noise", "noise", RAMP, "speckle"),
    IssueSpec("jpeg", "compression", RAMP, "JPEG blocks and ringing"),
    IssueSpec("brighten", "exposure", RAMP, "too bright"),
    IssueSpec("darken", "exposure", RAMP, "too dark"),
    IssueSpec(
        "mean_shift", "exposure", (1.0, 0.53, 0.0, 0.53, 1.0), "washed out or dim (L2 is the identity)"
    ),
    IssueSpec("color_diffusion", "color", RAMP, "colour bleeding"),
    IssueSpec("color_shift", "color", RAMP, "colour fringes"),
    IssueSpec("hsv_saturation", "color", RAMP, "desaturated"),
    IssueSpec("lab_saturation", "color", (0.0, 0.4, 0.6, 0.8, 1.0), "oversaturated (L0 is the identity)"),
    IssueSpec("contrast", "contrast", (1.0, 0.7, 0.4, 0.4, 0.8), "too much or too little contrast"),
    IssueSpec("color_block", "artifacts", RAMP, "blocks of solid colour"),
    IssueSpec("pixelate", "artifacts", RAMP, "pixelated"),
    IssueSpec("resize_nearest", "artifacts", RAMP, "upscaled (nearest neighbour): jagged"),
    IssueSpec("jitter", "artifacts", RAMP, "wobbly, jittered pixels"),
    IssueSpec("non_eccentricity", "artifacts", (0.2, 0.3, 0.4, 0.5, 0.6), "patches moved (glitches)"),
    IssueSpec("sharpen", "artifacts", RAMP, "oversharpened halos"),
)

#: catalogue type name -> its row, in the order above
TABLE: dict[str, IssueSpec] = {row.type: row for row in _ROWS}


def issue_of(type_: int | str) -> IssueSpec:
    """The row of a catalogue type (id, our name or the official one)."""
    spec = get(type_)
    if spec.name not in TABLE:  # a type added to the catalogue without a row here
        raise UnknownNameError(f"distortion {spec.name!r} has no issue in reiqa.distortions.issues")
    return TABLE[spec.name]


def label(type_: int | str, level: int) -> tuple[str, float]:
    """(issue, severity) of a rendering of ``type_`` at ``level`` (0..4)."""
    if not 0 <= level < NUM_LEVELS:
        raise ValueError(f"level must be in 0..{NUM_LEVELS - 1}, got {level}")
    return issue_of(type_).at(level)


def types_of(issue: str) -> list[str]:
    """The catalogue types of an issue, in catalogue order."""
    if issue not in ISSUES:
        raise UnknownNameError(f"unknown issue {issue!r}; one of {list(ISSUES)}")
    return [name for name in BY_NAME if name in TABLE and TABLE[name].issue == issue]
