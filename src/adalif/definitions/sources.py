"""Neurons of your own, from a Python file or a module: ``adalif train --import my_neurons.py``
(or ``--import mylab.neurons``, repeatable), a config's ``imports:`` list, or
:func:`import_neurons` from Python. An installed package's neurons need no import line: they come
through the entry-point group ``adalif.neurons`` (:func:`adalif.definitions.load_plugins`).

A file is imported with importlib under a stable module name, ``adalif_import_<stem>_<8 hex digits
of its absolute path>``, once per process (importing it again returns the first import). It must
register at least one neuron (``adalif.definitions.register(NeuronDefinition(...))``); a file or
module that fails to import, or registers nothing, is a one-line
:class:`~adalif.errors.NeuronImportError` naming it.

A checkpoint records where its neurons came from (``checkpoint["adalif"]["neuron_sources"]``), but
opening a checkpoint never imports what it records: a path in a file from elsewhere must not decide
what code runs (docs/training.md, "Security"). :func:`require_neuron` names the recorded module and
the ``--import`` to pass instead.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
import traceback
from types import ModuleType
from typing import Dict, Mapping, NamedTuple, Optional, Tuple

from ..errors import NeuronImportError
from . import base
from .base import NeuronDefinition, Source, get

__all__ = ["ImportedNeurons", "import_neurons", "is_file", "require_neuron"]


class ImportedNeurons(NamedTuple):
    """What :func:`import_neurons` did: the ``source`` as given, the imported ``module``, and the
    ``names`` of the neurons it defines."""

    source: str
    module: ModuleType
    names: Tuple[str, ...]


_IMPORTED: Dict[str, ImportedNeurons] = {}
_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def is_file(source: str) -> bool:
    """True when ``source`` names a file (ends in ``.py`` or holds a path separator), not a module."""
    return source.endswith(".py") or os.sep in source or (os.altsep is not None and os.altsep in source)


def module_name(path: str) -> str:
    """The stable module name a file is imported under: ``adalif_import_<stem>_<hash of the path>``."""
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    return f"adalif_import_{stem}_{hashlib.sha256(path.encode()).hexdigest()[:8]}"


def import_neurons(source: str) -> ImportedNeurons:
    """Import the neurons of ``source``: a ``.py`` file (a path, relative to the working directory)
    or a module name (``mylab.neurons``, importable from ``sys.path``). Once per process and
    source; raises :class:`~adalif.errors.NeuronImportError` naming ``source`` when it does not
    exist, fails to import, or registers no neuron."""
    if not isinstance(source, str) or not source.strip():
        raise NeuronImportError(f"import: expected a .py file or a module name, got {source!r}")
    if is_file(source):
        key = os.path.realpath(source)
    elif _MODULE_NAME.match(source):
        key = source
    else:
        raise NeuronImportError(f"import: {source!r} is neither a .py file nor a module name (like mylab.neurons)")
    if key in _IMPORTED:
        return _IMPORTED[key]
    before = dict(base._REGISTRY)
    if is_file(source):
        module, origin = _import_file(source, key), Source("file", key)
    else:
        module, origin = _import_module(source), Source("module", source)
    names = base._record_sources(before, module.__name__, origin)
    if not names:
        if origin.kind == "file":
            del sys.modules[module.__name__]
        raise NeuronImportError(f"import: {source} registers no neuron; a module of neurons calls "
                                f"adalif.definitions.register(NeuronDefinition(...)) (docs/neurons.md)")
    _IMPORTED[key] = ImportedNeurons(source, module, tuple(sorted(names)))
    return _IMPORTED[key]


def _import_file(source: str, path: str) -> ModuleType:
    if not os.path.isfile(path):
        raise NeuronImportError(f"import: {source}: no such file")
    name = module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as `import` does: the module can be found while it runs (dataclasses, pickle)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's code: one line naming the file, the line and the error
        del sys.modules[name]
        raise NeuronImportError(f"import: {source}{_line_in(err, path)} failed: {type(err).__name__}: {err}") from err
    return module


def _import_module(source: str) -> ModuleType:
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as err:
        if err.name is not None and (source == err.name or source.startswith(err.name + ".")):
            raise NeuronImportError(f"import: no module named {source!r} (a file? give its path, ending in .py)") from err
        raise NeuronImportError(f"import: {source} failed: {type(err).__name__}: {err}") from err
    except Exception as err:  # the module's own code
        raise NeuronImportError(f"import: {source} failed: {type(err).__name__}: {err}") from err


def _line_in(err: BaseException, path: str) -> str:
    """``, line N``: where in the file ``path`` the error was raised (or the syntax error is)."""
    if isinstance(err, SyntaxError) and err.lineno is not None:
        return f", line {err.lineno},"
    lines = [frame.lineno for frame in traceback.extract_tb(err.__traceback__) if os.path.realpath(frame.filename) == path]
    return f", line {lines[-1]}," if lines else ""


def require_neuron(name: str, recorded: Optional[Mapping[str, str]], what: str) -> NeuronDefinition:
    """The definition of neuron ``name`` that ``what`` (a checkpoint, a run) needs. When it is not
    registered, a one-line :class:`~adalif.errors.NeuronImportError` that names where it was
    defined (``recorded``: the ``kind`` and ``location`` of its :class:`Source`, as a checkpoint
    keeps them) and the ``--import`` to pass: nothing recorded is imported."""
    kind, location = (recorded or {}).get("kind"), (recorded or {}).get("location")
    try:
        definition = get(name)
    except ValueError:
        definition = None
    if definition is not None:
        current = base.source_of(name)
        if kind in ("file", "module", "entry point") and (current.kind, current.location) != (kind, location):
            # Two files may define a neuron of the same name: the checkpoint's numbers are its own one's.
            raise NeuronImportError(f"{what}: neuron {name!r} was defined in {location} ({kind}), but the registered "
                                    f"{name!r} comes from {current.location} ({current.kind}); pass --import {location}"
                                    if kind != "entry point" else
                                    f"{what}: neuron {name!r} came from the entry point {location}, but the registered "
                                    f"{name!r} comes from {current.location} ({current.kind})")
        return definition
    if kind in ("file", "module"):
        where = f"it was defined in {location}, which adalif does not import because a record names it " \
                f"(docs/training.md, Security); pass --import {location}"
    elif kind == "entry point":
        where = f"it came from the installed package entry point {location}; install that package, or pass " \
                f"--import FILE.py or MODULE with its definition"
    elif kind == "python":
        where = f"it was registered by {'a script' if location == '__main__' else 'the module ' + location}; " \
                f"pass --import FILE.py or MODULE with its definition"
    else:
        where = "pass --import FILE.py or MODULE with its definition"
    raise NeuronImportError(f"{what}: neuron {name!r} is not registered: {where}")
