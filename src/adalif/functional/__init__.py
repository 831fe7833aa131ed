"""Reference dynamics of every neuron as pure functions over ``[T, B, ...]`` sequences.

Each neuron has a step function ``step(x_t, state, params) -> StepOutput`` and a sequence
function ``neuron(x, state=None, params, return_traces=False) -> SequenceOutput`` that is the
plain loop over the step. These loops are the oracle every fast path in ``adalif.kernels`` is
tested against.
"""

from .arlif import ARLIFParameters, arlif, arlif_initial_state, arlif_step
from .dalif import DALIFParameters, dalif, dalif_step
from .lif import LIFParameters, lif, lif_initial_state, lif_step
from .loop import unroll
from .records import ARLIFState, LIFState, SequenceOutput, StepOutput

__all__ = [
    "ARLIFParameters", "ARLIFState", "DALIFParameters", "LIFParameters", "LIFState",
    "SequenceOutput", "StepOutput", "arlif", "arlif_initial_state", "arlif_step", "dalif",
    "dalif_step", "lif", "lif_initial_state", "lif_step", "unroll",
]
