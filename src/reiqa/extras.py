"""Optional dependencies: scoring needs the core install alone; training, fitting, evaluation, plots
and spreadsheet label files need an extra (``pip install 'reiqa[train]'``). :func:`require`
imports a module of an extra where it is used, or fails with one line naming the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from reiqa.errors import ReiqaError

#: the distribution that provides a top-level module, where the names differ
PACKAGES = {"sklearn": "scikit-learn"}


def require(module: str, extra: str, what: str, *, package: str | None = None) -> ModuleType:
    """Import and return ``module`` (e.g. ``"scipy.stats"``), which the extra ``extra`` installs.

    Raises:
        ReiqaError: it cannot be imported; the message, one line, says that ``what`` needs
            ``package`` (by default the distribution of the module's top-level name) and how to
            install the extra.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        package = package or PACKAGES.get(top, top)
        raise ReiqaError(f"{what} needs {package}: pip install 'reiqa[{extra}]'") from exc
