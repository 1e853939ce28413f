"""Errors a user can cause, each carrying one sentence that names the field, the value and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["MannkitError", "ConfigError", "ShapeError", "DataError", "PluginError", "TrainingError", "suggest"]


class MannkitError(Exception):
    """Base class of every error mannkit raises on purpose (as opposed to a bug)."""


class ConfigError(MannkitError, ValueError):
    """A configuration value is wrong: unknown class, bad option, out-of-range number."""


class ShapeError(MannkitError, ValueError):
    """A tensor does not have the shape a public boundary expects; the message gives both shapes."""


class DataError(MannkitError, ValueError):
    """A data directory or file is missing or malformed."""


class PluginError(MannkitError, RuntimeError):
    """A plugin is broken: a duplicate name, a failed import, an incompatible interface version."""


class TrainingError(MannkitError, RuntimeError):
    """Training cannot go on (for example the loss became NaN)."""


def suggest(value: str, choices: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or an empty string.

    >>> suggest("LSTMControler", ["LSTMController", "GRUController"])
    "; did you mean 'LSTMController'?"
    """
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
