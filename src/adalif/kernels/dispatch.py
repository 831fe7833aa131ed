"""Choose and run the implementation of a neuron's sequence function.

Backends:

* ``reference``: the plain loop of :mod:`adalif.functional` (autograd through every op);
* ``cpu``: the fused C loops of :mod:`.cpu` (built on first use), with hand-written backward;
* ``triton``: the Triton kernels of :mod:`.triton_impl` (CUDA tensors, or CPU tensors under
  ``TRITON_INTERPRET=1``);
* ``compiled``: the generic path of :mod:`.generic`, the step function compiled over the whole
  sequence, forward and backward (any family; the only fused path of a registered definition
  without hand-written kernels: CLIF, GLIF, your own).

The choice is, in order: the neuron's ``backend`` argument, the ``ADALIF_BACKEND``
environment variable, then automatic: ``triton`` for CUDA tensors, ``cpu`` for CPU tensors (the C
kernels are faster than the reference loop at every size: docs/benchmarks.md), ``compiled`` for a
family without hand-written kernels on CUDA, on CPU tensors when its step translates to C
(:mod:`.stepgen`), or on CPU sequences with at least :data:`AUTO_CPU_MIN_STEP_NUMEL` neurons per
step (below that ``torch.compile`` costs more than it saves), else ``reference``. When the C kernels cannot be built (no C compiler), the automatic choice uses
the reference loop and says why once. The chosen name is logged at debug level and kept on the
module (``neuron.last_backend``). A requested backend that cannot run raises and says why; it
never falls back silently. Configurations the fast paths do not cover (a surrogate that is not
exactly one of the built-in classes, a subclass included, since the kernels evaluate the built-in
derivatives; a non-spiking surrogate; a decay tensor that is neither per layer nor per channel;
a device other than CPU and CUDA) use the reference when the choice is automatic, and say so
once per reason with a WARNING of the ``adalif.kernels`` logger.

A step function that ``torch.compile`` cannot capture as one graph (Python control flow on a
tensor's value, an untraceable call) cannot run on ``compiled``: its first compile raises dynamo's
``Unsupported``. :func:`execute` then runs the reference loop on the same input; if the step raises
there too, that error is a bug in the step and propagates as itself. Otherwise the step is recorded
as not compilable: an automatic choice falls back to the reference with one ``UserWarning`` per
step function that names it and the break, and an explicit ``compiled`` raises in one line.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import os
import warnings
from typing import Callable, Dict, NamedTuple, Optional, Tuple

import torch

from .. import functional as F
from ..functional.arlif import reset as arlif_reset
from ..functional.arlif import threshold as arlif_threshold
from ..functional.checks import check_sequence
from ..functional.lif import charge_form as lif_charge_form
from ..functional.lif import reset as lif_reset
from ..surrogate import ATan, DspikeTanh, Rectangle, Sigmoid, Triangle
from . import cpu, generic, ops, stepgen  # noqa: F401  (ops registers the torch.ops.adalif custom ops)

log = logging.getLogger("adalif.kernels")

BACKENDS = ("reference", "cpu", "triton", "compiled")
#: The families with hand-written kernels (``cpu``, ``triton``); every other family (a registered
#: definition) runs on the generic ``compiled`` path of :mod:`.generic`.
HAND_WRITTEN = ("lif", "dalif", "arlif")
ENV_VAR = "ADALIF_BACKEND"
#: Automatic selection uses the generic compiled path (``compiled``) on the CPU from this many neurons
#: per time step. (The hand-written families use their C kernels at every size.)
AUTO_CPU_MIN_STEP_NUMEL = 1 << 14

#: The surrogates whose derivative the kernels evaluate in-kernel: these exact classes only, since
#: a subclass may override ``derivative`` and only the reference loop would honour it.
KERNEL_SURROGATES = (Rectangle, Triangle, Sigmoid, ATan, DspikeTanh)
_warned = set()
#: Step functions whose sequence does not compile as one graph, with why (the automatic choice runs
#: them on the reference; an explicit ``compiled`` refuses them).
_NOT_ONE_GRAPH: Dict[Callable, str] = {}


def _warn_once(message: str, *args) -> None:
    """A WARNING on the ``adalif.kernels`` logger, once per distinct message in a process."""
    key = message % args
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)


def check_backend_name(name: Optional[str], where: str) -> Optional[str]:
    if name is not None and name not in BACKENDS:
        raise ValueError(f"{where}: unknown backend {name!r}; expected one of {list(BACKENDS)} or None (automatic)")
    return name


# Checked once at import, without importing triton, so that selection stays traceable by
# torch.compile (an import inside the traced path would break the graph).
_TRITON_INSTALLED = importlib.util.find_spec("triton") is not None


def triton_unavailable_reason(device: torch.device) -> Optional[str]:
    """Why the Triton kernels cannot run on ``device``, or None when they can."""
    if not _TRITON_INSTALLED:
        return "the triton package is not installed (`pip install triton`, or adalif[triton])"
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        return f"Triton kernels need a CUDA tensor (got {device}) or TRITON_INTERPRET=1 for the CPU interpreter"
    return None


def _unsupported_reason(family: str, x: torch.Tensor, params: NamedTuple, compiled: bool = False) -> Optional[str]:
    sg = params.surrogate
    if type(sg) not in KERNEL_SURROGATES:
        return (f"surrogate {type(sg).__name__} is not one of the built-in surrogates that the fused kernels "
                f"implement ({', '.join(c.__name__ for c in KERNEL_SURROGATES)}; a subclass may change the derivative)")
    if not sg.spiking:
        return "the fused kernels implement spiking surrogates only (spiking=False needs the reference)"
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        return f"dtype {x.dtype} is not supported by the fused kernels"
    if compiled:
        return None
    if not (sg.inclusive and sg.closed):
        return (f"the hand-written kernels fire at u >= 0 with closed windows; {sg!r} needs the reference or "
                f"the generic compiled path")
    if family == "dalif":
        for name in ("alpha", "beta"):
            p = getattr(params, name)
            if isinstance(p, torch.Tensor) and p.numel() > 1 and not (params.per_channel and p.dim() == 1):
                return f"{name} of shape {tuple(p.shape)} is neither per layer nor per channel (per_channel=True, [C])"
    return None


def _requested(requested: Optional[str]) -> Optional[str]:
    """The backend asked for by name: the argument, else ``$ADALIF_BACKEND``; None for automatic."""
    return requested or check_backend_name(os.environ.get(ENV_VAR) or None, ENV_VAR)


def select(family: str, requested: Optional[str], x: torch.Tensor, params: NamedTuple,
           step: Optional[Callable] = None, dynamics: Optional[F.Dynamics] = None) -> str:
    """The backend that will run: the request, else ``$ADALIF_BACKEND``, else automatic. ``step``,
    the family's step function, lets the choice skip ``compiled`` for a step known not to compile
    as one graph (:func:`execute`); ``dynamics`` lets it take ``compiled`` on small CPU inputs when
    the step translates to C (:mod:`.stepgen`)."""
    name = _requested(requested)
    if family not in HAND_WRITTEN or name == "compiled":
        return _select_compiled(family, name, requested is not None, x, params, step, dynamics)
    if name is None:
        reason = _unsupported_reason(family, x, params)
        if reason is None and x.device.type not in ("cpu", "cuda"):
            reason = f"no fused kernel runs on {x.device.type} tensors"
        if reason is None:
            fused = "triton" if x.is_cuda else "cpu"
            reason = triton_unavailable_reason(x.device) if x.is_cuda else _cpu_reason()
            if reason is None:
                return fused
        # The reference loop is several times slower: say so, once per reason.
        _warn_once("adalif %s: using the reference loop (slower) because %s", family, reason)
        return "reference"
    if name == "reference":
        return name
    reason = _unsupported_reason(family, x, params)
    if reason is None:
        if name == "cpu":
            reason = _cpu_reason() or (None if x.device.type == "cpu" else f"the cpu backend needs CPU tensors, got {x.device}")
        else:
            reason = triton_unavailable_reason(x.device)
    if reason is not None:
        raise RuntimeError(f"adalif {family}: backend {name!r} cannot run: {reason}")
    return name


def _cpu_reason() -> Optional[str]:
    # The C kernels are built (or loaded) on first need; code being traced by torch.compile must not
    # run a compiler, so it reads what an earlier call found (the op builds them when it runs).
    return cpu.known_unavailable_reason() if torch.compiler.is_compiling() else cpu.unavailable_reason()


def _select_compiled(family: str, name: Optional[str], explicit: bool, x: torch.Tensor, params: NamedTuple,
                     step: Optional[Callable], dynamics: Optional[F.Dynamics] = None) -> str:
    """A family without hand-written kernels (or an explicit ``compiled``): the generic compiled
    path when it can run (automatically: CUDA, or CPU sequences of at least
    :data:`AUTO_CPU_MIN_STEP_NUMEL` neurons per step, a step not known to break the graph), else
    the reference."""
    if name == "reference":
        return name
    if name in ("cpu", "triton"):
        if explicit:
            raise RuntimeError(f"adalif {family}: backend {name!r} cannot run: {family} has no hand-written kernels; "
                               f"use backend='compiled' (its step function, compiled) or None")
        name = None  # ADALIF_BACKEND=cpu/triton: the fused path of a definition is the compiled one
    reason = _unsupported_reason(family, x, params, compiled=True) or generic.unavailable_reason(x.device)
    if name == "compiled":
        reason = reason or _NOT_ONE_GRAPH.get(step)
        if reason is not None:
            raise RuntimeError(f"adalif {family}: backend 'compiled' cannot run: {reason}")
        return name
    if reason is not None:
        _warn_once("adalif %s: using the reference loop (slower) because %s", family, reason)
        return "reference"
    if step in _NOT_ONE_GRAPH:  # warned when it was found out (execute)
        return "reference"
    if x.is_cuda or x[0].numel() >= AUTO_CPU_MIN_STEP_NUMEL:
        return "compiled"
    if dynamics is not None and not torch.compiler.is_compiling() and stepgen.translates(dynamics, x, params):
        return "compiled"  # C from the step: no compile to amortise, faster than the loop at every size
    return "reference"


class LIFCoefficients(NamedTuple):
    """A LIF-family neuron as :math:`H_t = \\beta V_{t-1} + \\alpha X_t + \\gamma`, each ``[P]``."""

    alpha: torch.Tensor
    beta: torch.Tensor
    gamma: torch.Tensor
    v_reset: float
    hard: bool


def lif_coefficients(family: str, params: NamedTuple, like: torch.Tensor) -> LIFCoefficients:
    """Map LIF/PLIF (:math:`k`, ``decay_input``, ``v_reset``) or DA-LIF (:math:`\\alpha, \\beta`) onto the op.

    Coefficients are computed in the kernels' compute dtype (float32 for half inputs): a decay
    such as 1/3 rounded to float16 first would change an fp32 computation."""
    cd = cpu.compute_dtype(like.dtype)
    as_vector = lambda p: (p if isinstance(p, torch.Tensor) else torch.tensor(p, dtype=cd, device=like.device)).reshape(-1)  # noqa: E731
    if family == "dalif":
        zero = like.new_zeros(1, dtype=cd)
        return LIFCoefficients(as_vector(params.alpha), as_vector(params.beta), zero, 0.0, not params.soft_reset)
    k = as_vector(params.decay)
    hard = params.v_reset is not None
    v_reset = params.v_reset if hard else 0.0
    alpha = k if params.decay_input else like.new_ones(1, dtype=cd)
    gamma = k * v_reset if v_reset != 0.0 else like.new_zeros(1, dtype=cd)
    return LIFCoefficients(alpha, 1.0 - k, gamma, v_reset, hard)


def _blocks(x: torch.Tensor, per_channel: bool) -> Tuple[int, int, int]:
    """``(O, P, I)`` of one step ``[B, C, ...]``: P indexes the parameters (C when per channel)."""
    step = x.shape[1:]
    if not per_channel:
        return 1, 1, math.prod(step)
    return step[0], step[1], math.prod(step[2:])


def _fused(dynamics: F.Dynamics, x: torch.Tensor, state: NamedTuple, params: NamedTuple, return_traces: bool,
           impl: str) -> F.SequenceOutput:
    """A runner for :func:`adalif.functional.run`: the fused kernels ``impl`` (``cpu`` or ``triton``)."""
    if dynamics.family == "arlif":
        return _run_arlif(x, state, params, impl, return_traces)
    return _run_lif(dynamics.family, x, state, params, impl, return_traces)


#: The runner of each backend, for :func:`adalif.functional.run`.
RUNNERS = {"reference": F.unroll, "cpu": functools.partial(_fused, impl="cpu"),
           "triton": functools.partial(_fused, impl="triton"), "compiled": generic.run}


class Executed(NamedTuple):
    """What :func:`execute` returns: the backend that ran and its output."""

    backend: str
    output: F.SequenceOutput


def execute(dynamics: F.Dynamics, requested: Optional[str], x: torch.Tensor, state: Optional[NamedTuple],
            params: NamedTuple, return_traces: bool = False) -> Executed:
    """``dynamics`` over ``x`` on the backend :func:`select` chooses, and which backend ran: the
    reference instead of ``compiled`` when the choice was automatic and the step function turned
    out not to compile as one graph (the module docstring)."""
    name = select(dynamics.family, requested, x, params, dynamics.step, dynamics)
    reason = None
    if name in ("cpu", "triton") and state is not None and any(s.dtype != x.dtype for s in state):
        # The kernels compute in one type; torch would promote a mixed state and input.
        reason = (f"the state's dtype ({', '.join(str(s.dtype) for s in state)}) differs from the input's "
                  f"({x.dtype})")
    elif name == "cpu" and dynamics.family == "arlif":  # its kernels evaluate torch's sigmoid
        reason = cpu.layout_reason(x, state)
    elif (name == "compiled" and _requested(requested) is None and state is not None and x.device.type == "cpu"
          and x[0].numel() < AUTO_CPU_MIN_STEP_NUMEL and not torch.compiler.is_compiling()
          and not stepgen.translates(dynamics, x, params, state)):
        name = "reference"  # chosen for the generated C, which this state's layout rules out (as select)
    if reason is not None:
        if _requested(requested) is not None:
            raise RuntimeError(f"adalif {dynamics.family}: backend {name!r} cannot run: {reason}")
        _warn_once("adalif %s: using the reference loop (slower) because %s", dynamics.family, reason)
        name = "reference"
    if name != "compiled" or torch.compiler.is_compiling():
        return Executed(name, F.run(dynamics, x, state, params, return_traces, runner=RUNNERS[name]))
    try:
        return Executed(name, F.run(dynamics, x, state, params, return_traces, runner=RUNNERS[name]))
    except Exception as err:
        if not isinstance(err, _capture_errors()):
            raise
        failure = err
    # Dynamo also reports a Python error in the step (a missing attribute) as Unsupported: such a bug
    # raises here, on the reference loop, as itself.
    output = F.run(dynamics, x, state, params, return_traces)
    reason = _NOT_ONE_GRAPH[dynamics.step] = _graph_break(dynamics.step, failure)
    if _requested(requested) == "compiled":
        raise RuntimeError(f"adalif {dynamics.family}: backend 'compiled' cannot run: {reason}") from failure
    # The user can fix the step, so a warnings.warn (once: the choice skips this step from now on).
    warnings.warn(f"adalif {dynamics.family}: using the reference loop (slower) because {reason}")
    return Executed("reference", output)


def _capture_errors() -> Tuple[type, ...]:
    """What dynamo raises when it cannot capture the whole sequence as one graph (``fullgraph=True``).
    Looked up when the compiled path has run: importing torch._dynamo with adalif would double its
    import time (and import Triton)."""
    import torch._dynamo.exc

    return torch._dynamo.exc.Unsupported, torch._dynamo.exc.UncapturedHigherOrderOpError


def _graph_break(step: Callable, err: Exception) -> str:
    """Why ``step`` does not compile as one graph, in one line: dynamo's first line and where."""
    name = f"{getattr(step, '__module__', None)}.{getattr(step, '__qualname__', None) or repr(step)}"
    why = (str(err).strip().splitlines() or [type(err).__name__])[0]
    stack = getattr(err, "real_stack", None)
    where = f" at {stack[-1].filename}:{stack[-1].lineno}" if stack else ""
    return (f"its step function {name} does not compile as one graph (torch.compile: {why}{where}); make the step "
            f"traceable (no Python branch on a tensor's value) or use backend='reference'")


def run(dynamics: F.Dynamics, x: torch.Tensor, state: Optional[NamedTuple] = None, params: Optional[NamedTuple] = None,
        return_traces: bool = False, backend: Optional[str] = None) -> F.SequenceOutput:
    """The fast path with the reference's signature: ``dynamics`` (``adalif.functional.LIF``,
    ``DALIF`` or ``ARLIF``) over ``x`` ``[T, B, ...]`` on the backend chosen as the module docstring
    says (``backend`` first). ``adalif.kernels.lif``/``dalif``/``arlif`` fix ``dynamics``."""
    check_backend_name(backend, "backend")
    if params is None:
        if dynamics.family not in _DEFAULT_PARAMS:
            raise ValueError(f"params: {dynamics.family} has no default parameter record; pass params "
                             f"(a module's .params())")
        params = _DEFAULT_PARAMS[dynamics.family]
    check_sequence(x)
    ran = execute(dynamics, backend, x, state, params, return_traces)
    if not torch.compiler.is_compiling():
        log.debug("adalif %s: backend %s for input %s %s", dynamics.family, ran.backend, tuple(x.shape), x.dtype)
    return ran.output


_DEFAULT_PARAMS = {"lif": F.LIFParameters(), "dalif": F.DALIFParameters(), "arlif": F.ARLIFParameters()}


def _needs_save(x, state, tensors, return_traces) -> bool:
    return return_traces or (
        torch.is_grad_enabled()
        and any(isinstance(t, torch.Tensor) and t.requires_grad for t in (x, *state, *tensors))
    )


def _run_lif(family, x, state, params, impl, return_traces) -> F.SequenceOutput:
    co = lif_coefficients(family, params, x)
    blocks = _blocks(x, getattr(params, "per_channel", False))
    T = x.shape[0]
    sg = params.surrogate
    save = _needs_save(x, state, (co.alpha, co.beta, co.gamma), return_traces)
    exact = ()
    if family == "lif":  # SpikingJelly's charge expression, exactly (functional.lif.charge)
        tau = params.tau
        k = co.alpha.new_zeros(1) if tau is not None else torch.as_tensor(params.decay, dtype=co.alpha.dtype,
                                                                           device=x.device).reshape(-1).detach()
        exact = (str(lif_charge_form(params)), k, float(tau or 0.0), (1.0 - 1.0 / tau) if tau else 0.0)
    s, h_seq, v = ops.lif(
        x.reshape(T, *blocks), state.v.reshape(blocks), co.alpha, co.beta, co.gamma,
        float(params.v_threshold), float(co.v_reset), co.hard, bool(params.detach_reset),
        sg.kind, sg.scale, save, impl, *exact,
    )
    # One contract for every backend: state and traces in the input's dtype.
    spikes = s.reshape(x.shape)
    v = v.reshape(x.shape[1:]).to(x.dtype)
    if not return_traces:
        return F.SequenceOutput(spikes, F.LIFState(v))
    h_seq = h_seq.reshape(x.shape).to(x.dtype)
    v_seq = lif_reset(h_seq, spikes, params.v_threshold, co.v_reset if co.hard else None, params.detach_reset)
    return F.SequenceOutput(spikes, F.LIFState(v), h_seq, v_seq)


def _run_arlif(x, state, params, impl, return_traces) -> F.SequenceOutput:
    cd = cpu.compute_dtype(x.dtype)
    as_tensor = lambda p: p if isinstance(p, torch.Tensor) else torch.tensor(p, dtype=cd, device=x.device)  # noqa: E731
    a, c = as_tensor(params.a), as_tensor(params.c)
    T = x.shape[0]
    shape = (1, 1, x[0].numel())
    sg = params.surrogate
    save = _needs_save(x, state, (a, c), return_traces)
    s, h_seq, m_seq, v, m = ops.arlif(
        x.reshape(T, *shape), state.v.reshape(shape), state.m.reshape(shape), a, c,
        float(params.decay), float(params.v_threshold), bool(params.adaptive_reset),
        bool(params.adaptive_threshold), bool(params.carry_memory), sg.kind, sg.scale, save, impl,
    )
    spikes = s.reshape(x.shape)
    new_state = F.ARLIFState(v.reshape(x.shape[1:]).to(x.dtype), m.reshape(x.shape[1:]).to(x.dtype))
    if not return_traces:
        return F.SequenceOutput(spikes, new_state)
    h_seq = h_seq.reshape(x.shape).to(x.dtype)
    m_seq = m_seq.reshape(x.shape).to(x.dtype) if params.adaptive_reset else None
    # One step at a time, as the reference: torch's tanh and sigmoid round by an element's position
    # in the tensor they are given (cpu.scalar_ranges).
    p = params._replace(a=a)
    v_seq = torch.stack([arlif_reset(h_seq[t], spikes[t], arlif_threshold(x[t], p), None if m_seq is None else m_seq[t],
                                     params) for t in range(T)])
    return F.SequenceOutput(spikes, new_state, h_seq, v_seq)
