"""JSON objects read into typed dataclasses, and written back: the one reader of reiqa's JSON
files (training configs, regressor and encoder descriptions, model cards, feature options).

:func:`from_dict` checks every value against its field's annotation, the nested dataclasses
recursively, and names the field by its dotted path (``optim.epochs must be int, got '3'``):

- ``str``, ``bool``; ``int`` (a float with an integral value, as JSON tools write ``40.0``, is
  taken); ``float`` (an int is taken, a bool is not; finite);
- ``X | None`` (null), ``X | Y`` (the first that fits), ``Literal[...]`` (one of the choices);
- ``tuple[X, ...]``, fixed ``tuple[X, Y]``, ``list[X]`` (from JSON arrays), ``dict[str, X]``;
- nested dataclasses; ``Any`` (taken as it is).

Unknown keys are refused, naming the known ones, unless the dataclass has a field ``extra``
(``dict[str, Any]``), which then receives them. Fields without a default must be present. An
error the dataclass raises itself (its ``__post_init__`` range checks) gets the section's path in
front when it does not name it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

from reiqa.errors import ConfigError, ReiqaError

__all__ = ["EXTRA", "from_dict", "to_dict"]

T = TypeVar("T")

#: The field that keeps keys a dataclass does not declare.
EXTRA = "extra"

_NAMES = {str: "str", int: "int", float: "float", bool: "bool", type(None): "null"}


class _Mismatch(Exception):
    """A value that does not fit one option of a union (the caller words the error)."""


def from_dict(cls: type[T], raw: object, where: str = "", *, error: type[ReiqaError] = ConfigError) -> T:
    """The dataclass ``cls`` built from the JSON object ``raw``, every field checked (see the
    module doc). ``where`` is the object's dotted path ('' at the top), put in front of field
    names in messages; errors are ``error`` (a :class:`ReiqaError` class, ConfigError unless
    given)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if not isinstance(raw, dict):
        raise error(f"{where or 'the top level'} must be an object, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    keeps_extra = EXTRA in fields
    declared = sorted(set(fields) - {EXTRA})
    unknown = sorted(k for k in raw if k not in fields or k == EXTRA)
    if unknown and not keeps_extra:
        raise error(f"{_in(where)}unknown field(s) {unknown}; known: {declared}")
    missing = [
        name
        for name, f in fields.items()
        if name != EXTRA
        and name not in raw
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise error(
            f"{_path(where, missing[0])} is missing" + (f" (also {missing[1:]})" * (len(missing) > 1))
        )
    values: dict[str, Any] = {  # in field order: the first bad field is the one reported
        name: _value(raw[name], hints[name], _path(where, name), error)
        for name in fields
        if name != EXTRA and name in raw
    }
    if keeps_extra:
        values[EXTRA] = {k: v for k, v in raw.items() if k in unknown}  # in the file's order
    try:
        return cls(**values)
    except (ConfigError, error) as exc:  # the dataclass's own checks may not name the section
        if where and not str(exc).startswith(where):
            raise error(f"{where}: {exc}") from exc
        if not isinstance(exc, error):
            raise error(str(exc)) from exc
        raise


def to_dict(obj: Any, *, omit_none: bool = False) -> dict[str, Any]:
    """The JSON object of a dataclass :func:`from_dict` reads back: nested dataclasses as objects,
    tuples as arrays, the ``extra`` keys after the fields. ``omit_none``: leave out the fields
    (not the extra keys) whose value is None."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name == EXTRA or (omit_none and value is None):
            continue
        out[f.name] = _json(value)
    extra = getattr(obj, EXTRA, None)
    if isinstance(extra, dict):
        out.update({k: _json(v) for k, v in extra.items() if k not in out})
    return out


def _json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    return value


def _in(where: str) -> str:
    return f"{where}: " if where else ""


def _path(where: str, name: object) -> str:
    return f"{where}.{name}" if where else str(name)


def _describe(kind: Any) -> str:
    """A field type as messages name it."""
    if kind in _NAMES:
        return _NAMES[kind]
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is types.UnionType or origin is typing.Union:
        return " or ".join(_describe(a) for a in args)
    if origin is Literal:
        return f"one of {list(args)}"
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return f"a list of {_describe(args[0])}"
    if origin is tuple:
        return f"a list of {len(args)} ({', '.join(_describe(a) for a in args)})"
    if origin is list:
        return f"a list of {_describe(args[0])}" if args else "a list"
    if origin is dict or kind is dict or dataclasses.is_dataclass(kind):
        return "an object"
    return getattr(kind, "__name__", str(kind))


def _value(value: Any, kind: Any, path: str, error: type[ReiqaError]) -> Any:
    """``value`` checked against the annotation ``kind`` (converted: lists to tuples, ints to
    floats); raises ``error`` naming ``path``."""
    try:
        return _convert(value, kind, path, error)
    except _Mismatch:
        raise error(f"{path} must be {_describe(kind)}, got {value!r}") from None


def _convert(value: Any, kind: Any, path: str, error: type[ReiqaError]) -> Any:
    """``_value`` that raises _Mismatch when ``value`` is not of the kind at all (the caller
    words it), or ``error`` for a deeper problem (an element, a nested field, a non-finite
    number)."""
    if kind is Any:
        return value
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if value is None:
        if type(None) in args or (origin is Literal and None in args):
            return None
        raise error(f"{path} must not be null")
    if origin is types.UnionType or origin is typing.Union:
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # X | None: X's own message, which may name an element or a field
            return _convert(value, options[0], path, error)
        deeper = None
        for option in options:
            try:
                return _convert(value, option, path, error)
            except _Mismatch:
                continue
            except ReiqaError as exc:  # the right shape, a wrong part: the more useful message
                deeper = deeper or exc
        if deeper is not None:
            raise deeper
        raise _Mismatch
    if origin is Literal:
        if value in args and not (isinstance(value, bool) and not any(isinstance(a, bool) for a in args)):
            return value
        raise _Mismatch
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise _Mismatch
        return from_dict(kind, value, path, error=error)
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():  # 40.0 from a JSON tool
            return int(value)
        raise _Mismatch
    if kind is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise _Mismatch
        if not math.isfinite(value):
            raise error(f"{path} must be a finite number, got {value!r}")
        return float(value)
    if kind is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise _Mismatch
        if origin is list:
            items = [args[0] if args else Any] * len(value)
        elif len(args) == 2 and args[1] is Ellipsis:
            items = [args[0]] * len(value)
        else:
            if len(value) != len(args):
                raise _Mismatch
            items = list(args)
        out = [_value(v, k, f"{path}[{i}]", error) for i, (v, k) in enumerate(zip(value, items, strict=True))]
        return out if origin is list else tuple(out)
    if origin is dict or kind is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        key_kind, item_kind = args if args else (str, Any)
        if key_kind is str and not all(isinstance(k, str) for k in value):
            raise _Mismatch
        return {k: _value(v, item_kind, _path(path, k), error) for k, v in value.items()}
    raise TypeError(f"{path}: the schema reader does not handle the annotation {kind!r}")


def read_json(path: Path, what: str, error: type[ReiqaError] = ConfigError) -> object:
    """The JSON value of the file ``path``; a file that cannot be read or parsed raises ``error``
    naming the file and ``what`` it should hold ('the model card')."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: cannot read {what} ({exc})") from exc
