"""Fast paths for the neuron dynamics, with the signatures of :mod:`adalif.functional` plus
``backend`` (``"reference"``, ``"cpu"``, ``"triton"`` or None for the automatic choice of
docs/kernels.md)::

    out = adalif.kernels.dalif(x, params=DALIFParameters(alpha=0.9, beta=0.3), backend="cpu")
"""

from .. import functional as F
from .dispatch import RUNNERS, run, select


def lif(x, state=None, params=None, return_traces=False, backend=None) -> F.SequenceOutput:
    """:func:`adalif.functional.lif` (LIF and PLIF) on the fastest path that runs (or ``backend``)."""
    return run(F.LIF, x, state, params, return_traces, backend)


def dalif(x, state=None, params=None, return_traces=False, backend=None) -> F.SequenceOutput:
    """:func:`adalif.functional.dalif` on the fastest path that runs (or ``backend``)."""
    return run(F.DALIF, x, state, params, return_traces, backend)


def arlif(x, state=None, params=None, return_traces=False, backend=None) -> F.SequenceOutput:
    """:func:`adalif.functional.arlif` on the fastest path that runs (or ``backend``)."""
    return run(F.ARLIF, x, state, params, return_traces, backend)


__all__ = ["RUNNERS", "arlif", "dalif", "lif", "run", "select"]
