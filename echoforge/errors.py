"""Errors a user can cause or fix; the CLI prints them as one line, without a traceback."""

from __future__ import annotations


class EchoforgeError(Exception):
    """An error with a message that says what to fix."""


class ConfigError(EchoforgeError):
    """The configuration is invalid."""


class InputError(EchoforgeError):
    """An input cannot be opened or understood as a whole."""


class MissingDependency(EchoforgeError):
    """An optional dependency is not installed."""

    def __init__(self, what: str, extra: str, module: str):
        super().__init__(
            f"{what} needs the '{module}' package: install it with "
            f"pip install 'echoforge[{extra}]'"
        )


class FailureRatioExceeded(EchoforgeError):
    """Too many records were rejected; the run stops."""


def require(module: str, what: str, extra: str):
    """Import an optional module or fail fast with the install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(what, extra, module.split(".")[0]) from exc
