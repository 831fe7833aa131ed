"""Neuron definitions: one record per neuron family, from which adalif derives the module, the
fused paths, configs, analysis, export and the SpikingJelly-style nodes (docs/neurons.md).

``adalif.definitions.get("clif")`` is CLIF's record; ``register(NeuronDefinition(...))`` adds one
of your own. The built-in neurons are registered here: LIF, PLIF, DA-LIF and AR-LIF (their modules
and kernels are hand-written), CLIF and GLIF (derived from their records).
"""

from .base import NeuronDefinition, Parameter, definition_of, get, register, registered
from . import builtin  # noqa: F401  (registers lif, plif, dalif, arlif)
from .clif import CLIF, CLIFOptions, CLIFState, clif_step
from .glif import GLIF, GLIFOptions, GLIFState, glif_step

__all__ = ["NeuronDefinition", "Parameter", "register", "get", "registered", "definition_of", "CLIF", "CLIFOptions",
           "CLIFState", "clif_step", "GLIF", "GLIFOptions", "GLIFState", "glif_step"]
