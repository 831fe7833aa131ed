"""The errors that say the user's input is wrong, as opposed to a bug.

``adalif``'s command line prints a :class:`UserError` as one line naming the key or file and
exits with status 2; any other exception keeps its traceback. Each class also derives from the
built-in exception it refines, so ``except ValueError`` (or ``FileNotFoundError``) still catches it.
"""

from __future__ import annotations

__all__ = ["UserError", "ConfigError", "MissingFileError", "ExistingRunError", "DatasetFileError", "CorruptFileError",
           "UnsafeFileError", "NeuronImportError"]


class UserError(Exception):
    """Something the user gave (a config value, a path, a dataset file) cannot work."""


class ConfigError(UserError, ValueError):
    """A configuration value (or command-line option) is invalid; the message names the key."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the run needs does not exist; the message says what was expected."""


class ExistingRunError(UserError, FileExistsError):
    """The run directory exists and the config neither overwrites nor resumes it."""


class DatasetFileError(UserError, ValueError):
    """A corrupt, truncated or malformed dataset file; the message names the file."""


class CorruptFileError(UserError, ValueError):
    """A checkpoint or state dict is empty, truncated or not a PyTorch file; the message names it and
    ``reason`` says what failed."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class UnsafeFileError(UserError, ValueError):
    """A file asks to run code that no file of its kind holds (a crafted pickle); nothing of it was
    run. The message names the file and what it asked for (:mod:`adalif.safe_load`)."""


class NeuronImportError(UserError, ImportError):
    """A module of neurons (``--import``, a config's ``imports:``, an installed package's entry point)
    failed to import or registers no neuron, or a checkpoint's neuron is not registered; the message
    names the module and what to pass (:mod:`adalif.definitions.sources`)."""
