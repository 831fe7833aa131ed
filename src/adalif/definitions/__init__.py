"""Neuron definitions: one record per neuron family, from which adalif derives the module, the
fused paths, configs, analysis, export and the SpikingJelly-style nodes (docs/neurons.md).

``adalif.definitions.get("clif")`` is CLIF's record; ``register(NeuronDefinition(...))`` adds one
of your own, and ``import_neurons("my_neurons.py")`` imports a file or module that does
(:mod:`.sources`; ``adalif train --import``); installed packages add theirs through the
entry-point group ``adalif.neurons`` (:func:`load_plugins`). Every other module of this package is
imported here, so a neuron added to adalif is one new file in it (its record, registered): LIF,
PLIF, DA-LIF and AR-LIF (``builtin``: their modules and kernels are hand-written), CLIF and GLIF
(derived from their records).
"""

import importlib
import pkgutil

from .base import (ENTRY_POINT_GROUP, NeuronDefinition, Parameter, Source, definition_of, get, load_plugins,
                   register, registered, source_of)
from .sources import ImportedNeurons, import_neurons, require_neuron

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "sources"):
        importlib.import_module(f"{__name__}.{_module.name}")

from .clif import CLIF, CLIFOptions, CLIFState, clif_step  # noqa: E402
from .glif import GLIF, GLIFOptions, GLIFState, glif_step  # noqa: E402


def __getattr__(name: str):
    # The module class of every registered neuron by its class name: adalif.definitions.CLIF.
    for n in registered():
        if get(n).class_name == name:
            return get(n).module_class()
    raise AttributeError(name)


__all__ = ["NeuronDefinition", "Parameter", "register", "get", "registered", "definition_of", "Source", "source_of",
           "import_neurons", "ImportedNeurons", "require_neuron", "load_plugins", "ENTRY_POINT_GROUP", "CLIF",
           "CLIFOptions", "CLIFState", "clif_step", "GLIF", "GLIFOptions", "GLIFState", "glif_step"]
