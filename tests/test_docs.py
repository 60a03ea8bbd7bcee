"""The README's distortion table is the catalogue's."""

from __future__ import annotations

import re
from pathlib import Path

from reiqa.distortions import CATALOG

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_distortion_table_matches_the_catalogue() -> None:
    rows = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| (\d+) \| `(\w+)` \| `(\w+)` \|[^|]*\|[^|]*\|(.*)\|", line)
        if m:
            cells = [c.strip() for c in m.group(4).split("|")]
            rows[int(m.group(1))] = (m.group(2), m.group(3), tuple(float(c) for c in cells[:5]))
    assert sorted(rows) == sorted(CATALOG)
    for t, spec in CATALOG.items():
        assert rows[t] == (spec.name, spec.official, tuple(float(v) for v in spec.levels)), spec.name
