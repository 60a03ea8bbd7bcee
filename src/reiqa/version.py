"""The package's version, in one place: ``reiqa.__version__``, the wheel's metadata
(``pyproject.toml`` reads it from here) and the service's ``X-Reiqa-Version`` header."""

__version__ = "0.1.0.dev0"
