"""The generic fused path: any neuron's step function, compiled over the whole sequence.

``torch.compile`` of the reference loop itself (:func:`adalif.functional.unroll`, the T steps
unrolled): inductor fuses the forward of all steps into one kernel (C++ on the CPU, Triton on CUDA),
and AOTAutograd derives the backward from the same graph and fuses it too, with its min-cut
partitioner choosing what to save and what to recompute. So a neuron defined by its step function
alone (:mod:`adalif.definitions`) gets a fused forward and backward with no hand-written
derivative; the spike is :class:`adalif.surrogate._BuiltinSpike`, whose surrogate backward is traced
into the same graph. The graph is specialised per T, dtype, tensor rank and option values, with
dynamic sizes otherwise: every layer shape of a network shares one compilation. docs/kernels.md
("The generic path") measures it against the hand-written kernels and the reference loop.
"""

from __future__ import annotations

import logging
import shutil
from typing import NamedTuple, Optional

import torch

from ..functional.loop import Dynamics, unroll
from ..functional.records import SequenceOutput
from ..surrogate import Surrogate
from . import stepgen

log = logging.getLogger("adalif.kernels")

def _unavailable_reason() -> Optional[str]:
    if not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")):
        return "torch.compile's CPU backend needs a C++ compiler (g++, c++ or clang++) on PATH"
    return None


#: Why the compiled path cannot run on the CPU here, or None when it can (checked once, at import,
#: so that backend selection stays traceable by torch.compile).
UNAVAILABLE_REASON = _unavailable_reason()

_COMPILED = []
_CANONICAL = {}


def _compiled_unroll():
    if not _COMPILED:
        _COMPILED.append(torch.compile(unroll, fullgraph=True, dynamic=True))
    return _COMPILED[0]


def _canonical(surrogate: Surrogate) -> Surrogate:
    # One object per distinct surrogate value: the graph guards on the object, and every layer builds
    # its own equal copy.
    return _CANONICAL.setdefault(surrogate, surrogate)


def run(dynamics: Dynamics, x: torch.Tensor, state: NamedTuple, params: NamedTuple,
        return_traces: bool = False) -> SequenceOutput:
    """A runner for :func:`adalif.functional.run`: ``dynamics`` over ``x`` ``[T, B, ...]``, compiled."""
    if x.device.type == "cpu" and not torch.compiler.is_compiling():
        try:  # the step translated to C (kernels/stepgen.py): no torch.compile, fast from the first call
            return stepgen.run(dynamics, x, state, params, return_traces)
        except stepgen.Unsupported as err:
            _note_once(dynamics, err)
    if hasattr(params, "surrogate"):
        params = params._replace(surrogate=_canonical(params.surrogate))
    # No duck sizing: two dimensions that happen to be equal must not be specialised as equal; and
    # each (definition, T, dtype, options) is its own graph, so the default limit of 8 graphs per
    # function would silently fall back to eager after a few configurations.
    # Floats (the options, a surrogate's scale) are constants of the graph, not symbolic inputs: the
    # surrogate's backward reads them, and a neuron's options do not change between calls.
    with torch.fx.experimental._config.patch(use_duck_shape=False), torch._dynamo.config.patch(
        recompile_limit=512, accumulated_recompile_limit=4096, specialize_float=True
    ):
        return _compiled_unroll()(dynamics, x, state, params, return_traces)


def _note_once(dynamics: Dynamics, err: Exception) -> None:
    key = (dynamics.family, str(err))
    if key not in _NOTED:
        _NOTED.add(key)
        log.info("adalif %s: its step is compiled by torch.compile (slow on first use: docs/kernels.md) because the "
                 "C generator does not translate %s", dynamics.family, err)


_NOTED = set()


def unavailable_reason(device: torch.device) -> Optional[str]:
    """Why the compiled path cannot run on ``device``, or None."""
    from . import dispatch

    if device.type == "cpu":
        return UNAVAILABLE_REASON
    if device.type == "cuda":
        return None if dispatch._TRITON_INSTALLED else "torch.compile on CUDA needs the triton package"
    return f"torch.compile's fused path runs on CPU and CUDA tensors, not {device.type}"
