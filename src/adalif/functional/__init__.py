"""Reference dynamics of every neuron as pure functions over ``[T, B, ...]`` sequences.

Each neuron family is a :class:`Dynamics` record (``LIF``, ``DALIF``, ``ARLIF``): a step function
``step(x_t, state, params) -> StepOutput`` and its initial state. The sequence functions
``lif``/``dalif``/``arlif(x, state=None, params, return_traces=False) -> SequenceOutput`` run it
with :func:`run` and the plain loop :func:`unroll`: the oracle every fast path in
``adalif.kernels`` is tested against. ``adalif.kernels.lif`` etc. have the same signature.
"""

from .arlif import ARLIF, ARLIFParameters, arlif, arlif_initial_state, arlif_step
from .dalif import DALIF, DALIFParameters, dalif, dalif_initial_state, dalif_step
from .lif import LIF, LIFParameters, lif, lif_initial_state, lif_step
from .loop import Dynamics, run, unroll
from .records import ARLIFState, LIFState, SequenceOutput, StepOutput

__all__ = [
    "ARLIF", "ARLIFParameters", "ARLIFState", "DALIF", "DALIFParameters", "Dynamics", "LIF", "LIFParameters",
    "LIFState", "SequenceOutput", "StepOutput", "arlif", "arlif_initial_state", "arlif_step", "dalif",
    "dalif_initial_state", "dalif_step", "lif", "lif_initial_state", "lif_step", "run", "unroll",
]
