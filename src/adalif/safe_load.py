"""Opening files that may come from elsewhere without running code from them.

A pickle names callables (``module.name``) that its reader calls to rebuild objects: a crafted
file names ``os.system`` and the reader runs a shell command. adalif reads pickles in two places,
and both go through this module (docs/training.md, "Security"):

* :func:`load_torch`: adalif checkpoints (``adalif eval``, ``report``, ``figure raster``,
  ``export-nir``, resume, Lightning's own loading of a resumed checkpoint) and state dicts saved by
  the official code (``import-weights``), with ``torch.load(weights_only=True)``: tensors, plain
  containers and primitives, plus :data:`CHECKPOINT_GLOBALS`.
* :func:`load_pickle`: the CIFAR-10/100 batches, with an unpickler that resolves only the globals it
  is given (:data:`NUMPY_ARRAY_GLOBALS`: what numpy arrays are pickled with).

Anything else is refused before it is called, with a :class:`~adalif.errors.UnsafeFileError` that
names the file and the global it asked for. The frame cache is read with ``np.load`` without
pickles (``allow_pickle=False``, numpy's default) and needs nothing here.
"""

from __future__ import annotations

import codecs
import os
import pickle
import re
from typing import Any, Callable, Dict, Tuple

import numpy as np
import torch

from .errors import CorruptFileError, UnsafeFileError

__all__ = ["CHECKPOINT_GLOBALS", "NUMPY_ARRAY_GLOBALS", "load_torch", "load_pickle"]

# Globals that adalif's checkpoints need beyond what ``torch.load(weights_only=True)`` accepts by
# default (tensors, dict/OrderedDict/list/tuple/set, str/bytes/int/float/bool/None, torch.Size,
# dtype and device), each with the reason. Empty: adalif writes its metadata as plain data (see
# ``adalif.train.callbacks.plain``) and Lightning's entries (loops, callbacks, optimiser and
# scheduler states) are plain too. tests/test_safe_load.py writes the checkpoint of every shipped
# config and loads it safely, so a type that needs an entry here fails there first.
CHECKPOINT_GLOBALS: Tuple[Any, ...] = ()


def load_torch(path, what: str = "checkpoint:", mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; ``what`` starts the errors (``"checkpoint:"``).

    Raises :class:`UnsafeFileError` when the file asks for code outside the allowlist (nothing of it
    is run), :class:`CorruptFileError` when it is empty, truncated or not a PyTorch file."""
    path = os.fspath(path)
    try:
        with torch.serialization.safe_globals(list(CHECKPOINT_GLOBALS)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL (\S+)", str(err))
        if found is None:  # not a global: an opcode or a structure that no pickle of torch.save holds
            reason = f"UnpicklingError: {_key_line(err)}"
            raise CorruptFileError(f"{what} {path!r} is corrupt or unreadable ({reason})", reason) from None
        raise UnsafeFileError(
            f"{what} {path!r} refused: it asks to run {found.group(1)}, which no adalif checkpoint or state dict "
            "holds; nothing from it was run (adalif opens files with torch.load(weights_only=True))"
        ) from None
    except FileNotFoundError:
        raise
    except Exception as err:  # empty, truncated, not a zip or pickle: name the file and why
        reason = f"{type(err).__name__}: {_first_line(err)}" if str(err) else f"{type(err).__name__}, the file ends early"
        raise CorruptFileError(f"{what} {path!r} is corrupt or unreadable ({reason})", reason) from None


def _key_line(err: BaseException) -> str:
    # torch's weights-only errors wrap the one line that matters in paragraphs of advice.
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Weights only load failed", "Please file an issue",
                                                             "Check the documentation"))]
    return (useful or lines or [""])[-1]


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else ""


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    # Python 3 pickles bytes at protocols 0-2 as _codecs.encode(str, "latin1"); no other codec is needed.
    if encoding != "latin1" or not isinstance(text, str):
        raise _Refused(f"_codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


def _plain_dtype(*args) -> np.dtype:
    dtype = np.dtype(*args)
    if dtype.hasobject:  # an object array would hold arbitrary pickled objects: not a data file
        raise _Refused(f"numpy.dtype of objects ({dtype})")
    return dtype


def _numpy(module: str, name: str) -> Callable:
    # numpy 2 moved numpy.core to numpy._core; files written by numpy 1 (and Python 2) name the old one.
    import importlib

    for candidate in (module.replace("numpy.core", "numpy._core"), module):
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise _Refused(f"{module}.{name}, which this numpy does not have")


# What numpy arrays (and numpy scalars) of non-object dtypes are pickled with, at every protocol,
# by numpy 1 or 2 under Python 2 or 3; the values build the object the key names.
NUMPY_ARRAY_GLOBALS: Dict[Tuple[str, str], Callable[[], Callable]] = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: _plain_dtype,
    ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): lambda: _numpy("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"): lambda: _numpy("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"): lambda: _numpy("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): lambda: _numpy("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"): lambda: _latin1_encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals of ``allowed``; every other one is refused before it is called."""

    def __init__(self, fh, allowed: Dict[Tuple[str, str], Callable[[], Callable]], **kwargs) -> None:
        super().__init__(fh, **kwargs)
        self.allowed = allowed

    def find_class(self, module: str, name: str):
        make = self.allowed.get((module, name))
        if make is None:
            raise _Refused(f"{module}.{name}")
        return make()


class _Refused(pickle.UnpicklingError):
    pass


def load_pickle(path, holds: str, allowed=NUMPY_ARRAY_GLOBALS, encoding: str = "ASCII") -> Any:
    """The object pickled in ``path``, rebuilt with only the globals of ``allowed``; ``holds`` says
    what such a file contains (for the error). A refused global raises :class:`UnsafeFileError`;
    a file that is not a pickle raises what :mod:`pickle` raises."""
    path = os.fspath(path)
    with open(path, "rb") as fh:
        try:
            return _RestrictedUnpickler(fh, allowed, encoding=encoding).load()
        except _Refused as err:
            raise UnsafeFileError(f"{path}: refused: it asks to run {err}, but {holds}; nothing from it was run") from None
