"""The JSON -> dataclass reader: every value checked against its annotation, errors naming the
dotted field, unknown keys refused (or kept in ``extra``), and what it reads writes back."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from reiqa.errors import ConfigError, RegressorError
from reiqa.schema import from_dict, to_dict


@dataclass(frozen=True)
class Inner:
    size: int
    scale: tuple[float, float] = (0.2, 1.0)

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ConfigError(f"size must be >= 1, got {self.size}")


@dataclass(frozen=True)
class Ref:
    file: str
    sha256: str | None = None


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner = field(default_factory=lambda: Inner(4))
    rate: float = 0.5
    flag: bool = False
    limit: int | None = None
    kind: Literal["a", "b"] = "a"
    steps: tuple[float, ...] = ()
    names: list[str] = field(default_factory=list)
    table: dict[str, dict[str, float]] = field(default_factory=dict)
    source: Ref | str | None = None
    anything: Any = None


@dataclass(frozen=True)
class Open:
    name: str
    extra: dict[str, Any] = field(default_factory=dict)


def test_values_are_checked_and_converted() -> None:
    got = from_dict(
        Outer,
        {
            "name": "x",
            "inner": {"size": 3.0, "scale": [0, 1]},  # 3.0 from a JSON tool is an int
            "rate": 2,
            "limit": None,
            "kind": "b",
            "steps": [1, 2.5],
            "names": ["p"],
            "table": {"0.1": {"srcc": 1}},
            "source": {"file": "mos.csv", "sha256": "ab"},
            "anything": [1, {"a": None}],
        },
    )
    assert got == Outer(
        "x",
        Inner(3, (0.0, 1.0)),
        2.0,
        False,
        None,
        "b",
        (1.0, 2.5),
        ["p"],
        {"0.1": {"srcc": 1.0}},
        Ref("mos.csv", "ab"),
        [1, {"a": None}],
    )
    assert isinstance(got.rate, float) and isinstance(got.inner.size, int)
    assert from_dict(Outer, {"name": "x", "source": "/old/path/mos.csv"}).source == "/old/path/mos.csv"
    assert from_dict(Outer, to_dict(got)) == got  # what it writes reads back


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": 3}, r"^cfg\.name must be str, got 3$"),
        ({"name": "x", "flag": 1}, r"cfg\.flag must be bool, got 1"),
        ({"name": "x", "limit": True}, r"cfg\.limit must be int or null, got True"),
        ({"name": "x", "limit": 2.5}, r"cfg\.limit must be int or null, got 2\.5"),
        ({"name": "x", "rate": False}, r"cfg\.rate must be float, got False"),
        ({"name": "x", "rate": math.nan}, r"cfg\.rate must be a finite number, got nan"),
        ({"name": "x", "rate": None}, r"cfg\.rate must not be null"),
        ({"name": "x", "kind": "c"}, r"cfg\.kind must be one of \['a', 'b'\], got 'c'"),
        ({"name": "x", "steps": [1, "2"]}, r"cfg\.steps\[1\] must be float, got '2'"),
        ({"name": "x", "inner": {"size": 2, "scale": [1]}}, r"cfg\.inner\.scale must be a list of 2"),
        ({"name": "x", "inner": []}, r"cfg\.inner must be an object, got \[\]"),
        ({"name": "x", "inner": {"size": "2"}}, r"cfg\.inner\.size must be int, got '2'"),
        ({"name": "x", "inner": {}}, r"cfg\.inner\.size is missing"),
        ({"name": "x", "inner": {"size": 0}}, r"cfg\.inner: size must be >= 1, got 0"),  # its own check
        ({"name": "x", "table": {"a": {"srcc": "high"}}}, r"cfg\.table\.a\.srcc must be float"),
        ({"name": "x", "source": {"file": 1}}, r"cfg\.source\.file must be str, got 1"),
        ({"name": "x", "source": 5}, r"cfg\.source must be an object or str or null, got 5"),
        ({}, r"cfg\.name is missing"),
        ({"name": "x", "nme": 1, "zz": 2}, r"cfg: unknown field\(s\) \['nme', 'zz'\]; known: \['anything', "),
    ],
)
def test_errors_name_the_dotted_field(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_dict(Outer, raw, "cfg")


def test_the_top_level_and_the_error_class() -> None:
    with pytest.raises(ConfigError, match=r"^the top level must be an object, got \[1\]$"):
        from_dict(Outer, [1])
    with pytest.raises(ConfigError, match=r"^name must not be null$"):
        from_dict(Outer, {"name": None})
    with pytest.raises(RegressorError, match=r"^info\.inner: size must be >= 1"):  # its ConfigError too
        from_dict(Outer, {"name": "x", "inner": {"size": 0}}, "info", error=RegressorError)
    with pytest.raises(RegressorError, match=r"info\.rate must be float"):
        from_dict(Outer, {"name": "x", "rate": "fast"}, "info", error=RegressorError)


def test_unknown_keys_go_to_extra_when_there_is_one_and_are_written_back() -> None:
    got = from_dict(Open, {"name": "x", "scale": {"mean": 1.0}, "extra": 3})
    assert got == Open("x", {"scale": {"mean": 1.0}, "extra": 3})
    assert to_dict(got) == {"name": "x", "scale": {"mean": 1.0}, "extra": 3}
    with pytest.raises(ConfigError, match=r"name must be str"):
        from_dict(Open, {"name": 1, "other": 2})


def test_to_dict_writes_json_types_and_can_leave_out_nulls() -> None:
    value = Outer("x", steps=(1.0,), source=Ref("a.csv"))
    raw = to_dict(value)
    assert raw["inner"] == {"size": 4, "scale": [0.2, 1.0]} and raw["steps"] == [1.0]
    assert raw["source"] == {"file": "a.csv", "sha256": None} and raw["limit"] is None
    assert "limit" not in to_dict(value, omit_none=True) and "anything" not in to_dict(value, omit_none=True)
