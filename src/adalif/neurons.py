"""Spiking neuron modules: ``LIF``, ``PLIF``, ``DALIF``, ``ARLIF``.

Each module owns its parameters and calls a pure function: ``neuron(x)`` with ``x`` of shape
``[T, B, ...]`` returns the spikes ``[T, B, ...]`` (same dtype) and starts from a fresh state, so
there is no ``reset_net`` to forget. Streaming use keeps the state explicitly::

    out = neuron.run(x_chunk, state)          # SequenceOutput(spikes, state, h_seq, v_seq)
    out = neuron.step(x_t, state)             # one step, x_t of shape [B, ...]

The equations are in :mod:`adalif.functional` and docs/neurons.md.
"""

from __future__ import annotations

import inspect
import math
from typing import NamedTuple, Optional

import torch
from torch import nn

from . import functional as F
from .functional.checks import (
    check_choice,
    check_finite,
    check_positive,
    check_sequence,
    check_state,
)
from .kernels import dispatch
from .surrogate import Surrogate, get_surrogate

__all__ = ["Neuron", "LIF", "PLIF", "DALIF", "ARLIF", "DECAY_FUNCTIONS"]

# Each neuron's defaults are written once, in its parameter record (adalif.functional); the
# modules' constructors take theirs from it.
_LIF, _DALIF, _ARLIF = F.LIFParameters(), F.DALIFParameters(), F.ARLIFParameters()


class Neuron(nn.Module):
    """Common call protocol. Subclasses set ``dynamics`` (their family in :mod:`adalif.functional`)
    and define ``params()``; the sequence and the step run through the family's functions."""

    dynamics: F.Dynamics
    """The neuron family: its step function, initial state and fused kernels."""
    spiking: bool = True
    """Whether the output is spikes (0 or 1); False for a readout whose output is its potential."""

    def __init__(self, backend: Optional[str] = None) -> None:
        """``backend``: ``None`` (automatic), ``"reference"``, ``"cpu"``, ``"triton"`` or
        ``"compiled"`` (docs/kernels.md)."""
        super().__init__()
        self.backend = dispatch.check_backend_name(backend, "backend")
        """The path that runs the sequence: None for the automatic choice, or a backend's name."""

    # -- to be provided by each neuron -------------------------------------------------------
    def params(self) -> NamedTuple:
        """The parameter record of the family's functions."""
        raise NotImplementedError

    def _check_step_input(self, x: torch.Tensor, name: str) -> None:
        """Neuron-specific checks of one step ``[B, ...]`` (for example the channel count)."""

    # -- shared ------------------------------------------------------------------------------
    def initial_state(self, like: torch.Tensor) -> NamedTuple:
        """The state before the first step, shaped like one step ``like`` (``[B, ...]``)."""
        return self.dynamics.initial_state(like, self.params())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Spikes ``[T, B, ...]`` for ``x`` ``[T, B, ...]``, from a fresh state."""
        return self.run(x).spikes

    def run(
        self, x: torch.Tensor, state: Optional[NamedTuple] = None, return_traces: bool = False
    ) -> F.SequenceOutput:
        """The whole sequence with its final state; ``h_seq``/``v_seq`` when ``return_traces``."""
        check_sequence(x)
        self._check_step_input(x[0], "x")
        ran = dispatch.execute(self.dynamics, self.backend, x, state, self.params(), return_traces)
        self._last_backend = ran.backend
        return ran.output

    def step(self, x: torch.Tensor, state: Optional[NamedTuple] = None, t: int = 0) -> F.StepOutput:
        """One time step: ``x`` ``[B, ...]`` -> ``StepOutput(spikes, state, h)``; ``t`` matters only to
        a neuron with a parameter per time step (GLIF's conductance)."""
        check_sequence(x, min_dim=1)
        self._check_step_input(x, "x")
        params = self.params()
        if state is None:
            state = self.dynamics.initial_state(x, params)
        else:
            for field, value in zip(state._fields, state):
                check_state(value, x.shape, f"state.{field}")
        if self.dynamics.at is not None:
            params = self.dynamics.at(params, t, x)
        return self.dynamics.step(x, state, params)

    @property
    def last_backend(self) -> Optional[str]:
        """The path that ran the most recent sequence call (``reference``, ``cpu``, ``triton`` or
        ``compiled``)."""
        return getattr(self, "_last_backend", None)


def _check_tau(value: float, name: str) -> float:
    value = check_positive(value, name)
    if value <= 1.0:
        raise ValueError(f"{name}: expected a membrane time constant > 1, got {value!r}")
    return value


class LIF(Neuron):
    """Leaky integrate-and-fire with SpikingJelly ``LIFNode`` semantics (multi-step mode).

    ``v_reset=None`` selects the soft reset (subtract :math:`V_{th}`). ``tau`` must exceed 1.
    """

    dynamics = F.LIF
    _tau_name = "tau"  # PLIF calls its argument init_tau, as SpikingJelly does

    def __init__(
        self,
        tau: float = 1.0 / _LIF.decay,
        decay_input: bool = _LIF.decay_input,
        v_threshold: float = _LIF.v_threshold,
        v_reset: Optional[float] = _LIF.v_reset,
        detach_reset: bool = _LIF.detach_reset,
        surrogate: Surrogate = _LIF.surrogate,
        backend: Optional[str] = None,
    ) -> None:
        super().__init__(backend)
        self.decay_input = bool(decay_input)
        self.v_threshold = check_positive(v_threshold, "v_threshold")
        self.v_reset = None if v_reset is None else check_finite(v_reset, "v_reset")
        self.detach_reset = bool(detach_reset)
        self.surrogate = get_surrogate(surrogate)
        self._init_decay(_check_tau(tau, self._tau_name))

    def _init_decay(self, tau: float) -> None:
        self.tau = tau

    def decay(self):
        """:math:`k = 1/\\tau`."""
        return 1.0 / self.tau

    def params(self) -> F.LIFParameters:
        # LIF divides by tau and PLIF multiplies by sigmoid(w), as SpikingJelly's two nodes do.
        tau = self.tau if type(self)._tau_name == "tau" else None
        return F.LIFParameters(
            self.decay(), self.decay_input, self.v_threshold, self.v_reset, self.detach_reset, self.surrogate, tau
        )

    def extra_repr(self) -> str:
        reset = "soft" if self.v_reset is None else f"v_reset={self.v_reset}"
        return (
            f"tau={self.tau:.4g}, decay_input={self.decay_input}, v_threshold={self.v_threshold}, "
            f"{reset}, detach_reset={self.detach_reset}, surrogate={self.surrogate}"
        )


class PLIF(LIF):
    """Parametric LIF (SpikingJelly ``ParametricLIFNode``): one learnable decay per layer.

    :math:`k = \\sigma(w)` with :math:`w_0 = -\\log(\\texttt{init\\_tau} - 1)`, so :math:`k_0 = 1/\\texttt{init\\_tau}`.
    Every other argument is :class:`LIF`'s.
    """

    _tau_name = "init_tau"

    def __init__(self, init_tau: float = 1.0 / _LIF.decay, **kwargs) -> None:
        super().__init__(init_tau, **kwargs)

    def _init_decay(self, tau: float) -> None:
        self.w = nn.Parameter(torch.tensor(-math.log(tau - 1.0)))

    @property
    def tau(self) -> float:
        """The current membrane time constant :math:`1/\\sigma(w)`."""
        return float(1.0 / torch.sigmoid(self.w.detach()))

    def decay(self) -> torch.Tensor:
        return torch.sigmoid(self.w)


#: Maps from a free parameter to an effective decay, with the range each can reach.
DECAY_FUNCTIONS = {
    "tanh": (torch.tanh, math.atanh, (-1.0, 1.0)),
    "sigmoid": (torch.sigmoid, lambda d: math.log(d / (1.0 - d)), (0.0, 1.0)),
    "none": (lambda p: p, lambda d: d, (-math.inf, math.inf)),
}


class DALIF(Neuron):
    """Dual Adaptive LIF: learnable spatial decay :math:`\\alpha` and temporal decay :math:`\\beta`.

    :math:`H_t = \\beta V_{t-1} + \\alpha X_t`, :math:`\\alpha = f(\\tau_a)`, :math:`\\beta = f(\\tau_b)`
    with ``decay_fn`` :math:`f` in ``{"tanh", "sigmoid", "none"}``. ``alpha_init``/``beta_init``
    are the effective decays at initialisation (the module stores :math:`\\tau = f^{-1}(\\cdot)`).

    * ``granularity="layer"``: one pair per module; ``"channel"``: one pair per channel, the
      input's dimension 2 (``[T, B, C, ...]``), which needs ``num_channels``.
    * ``learn_alpha=False`` / ``learn_beta=False`` keep a decay fixed at its initial value (a
      buffer): the paper's single-decay ablations ("temporal only", "spatial only", and the
      variable-decay LIF ``DALIF(alpha_init=1.0, learn_alpha=False, decay_fn="none")``).
    * ``reset="hard"`` (to 0, default) or ``"soft"`` (subtract :math:`V_{th}`).

    Defaults are the reconstruction documented in docs/neurons.md: :math:`\\alpha_0=\\tanh 2`,
    :math:`\\beta_0=0.25`, :math:`V_{th}=0.5`, hard reset, Dspike-tanh surrogate with b = 3.
    """

    dynamics = F.DALIF

    def __init__(
        self,
        alpha_init: float = _DALIF.alpha,
        beta_init: float = _DALIF.beta,
        decay_fn: str = "tanh",
        granularity: str = "layer",
        num_channels: Optional[int] = None,
        v_threshold: float = _DALIF.v_threshold,
        reset: str = "soft" if _DALIF.soft_reset else "hard",
        detach_reset: bool = _DALIF.detach_reset,
        surrogate: Surrogate = _DALIF.surrogate,
        learn_alpha: bool = True,
        learn_beta: bool = True,
        backend: Optional[str] = None,
    ) -> None:
        super().__init__(backend)
        self.decay_fn = check_choice(decay_fn, list(DECAY_FUNCTIONS), "decay_fn")
        self.granularity = check_choice(granularity, ["layer", "channel"], "granularity")
        # Not ``self.reset``: SpikingJelly's reset_net calls ``reset()`` on every module that has one.
        self.reset_mode = check_choice(reset, ["hard", "soft"], "reset")
        if granularity == "channel":
            if not (isinstance(num_channels, int) and num_channels > 0):
                raise ValueError(
                    f"num_channels: granularity='channel' needs a positive channel count, got {num_channels!r}"
                )
        elif num_channels is not None:
            raise ValueError("num_channels: only used with granularity='channel'; leave it None for 'layer'")
        self.num_channels = num_channels
        self.v_threshold = check_positive(v_threshold, "v_threshold")
        self.detach_reset = bool(detach_reset)
        self.surrogate = get_surrogate(surrogate)
        self.learn_alpha, self.learn_beta = bool(learn_alpha), bool(learn_beta)
        shape = (num_channels,) if granularity == "channel" else ()
        self._register_decay("alpha", alpha_init, self.learn_alpha, shape)
        self._register_decay("beta", beta_init, self.learn_beta, shape)

    #: Where each decay lives: the free parameter f^-1(decay) when learned, the decay itself when
    #: fixed. Two names, so that a state dict never loads with the other meaning.
    _NAMES = {("alpha", True): "tau_a", ("alpha", False): "fixed_alpha",
              ("beta", True): "tau_b", ("beta", False): "fixed_beta"}

    def _register_decay(self, decay: str, value: float, learn: bool, shape) -> None:
        arg, name = f"{decay}_init", self._NAMES[decay, learn]
        value = check_finite(value, arg)
        if learn:
            _, inverse, (low, high) = DECAY_FUNCTIONS[self.decay_fn]
            if not low < value < high:
                raise ValueError(
                    f"{arg}: {value!r} cannot be reached by decay_fn={self.decay_fn!r}, whose range is "
                    f"({low}, {high}); use decay_fn='none' or a value inside the range"
                )
            self.register_parameter(name, nn.Parameter(torch.full(shape, inverse(value))))
        else:
            # A fixed decay is stored as its effective value: no inverse needed, any value allowed.
            self.register_buffer(name, torch.full(shape, value))

    def _effective(self, decay: str, learn: bool) -> torch.Tensor:
        stored = getattr(self, self._NAMES[decay, learn])
        return DECAY_FUNCTIONS[self.decay_fn][0](stored) if learn else stored

    @property
    def alpha(self) -> torch.Tensor:
        """Effective spatial decay :math:`\\alpha = f(\\tau_a)` (or ``fixed_alpha``): a scalar, or ``[C]`` per channel."""
        return self._effective("alpha", self.learn_alpha)

    @property
    def beta(self) -> torch.Tensor:
        """Effective temporal decay :math:`\\beta = f(\\tau_b)` (or ``fixed_beta``): a scalar, or ``[C]`` per channel."""
        return self._effective("beta", self.learn_beta)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        # A learned decay's free parameter must never load as a fixed decay, or the reverse.
        for decay, learn in (("alpha", self.learn_alpha), ("beta", self.learn_beta)):
            other = prefix + self._NAMES[decay, not learn]
            if other not in state_dict:
                continue
            if learn:
                raise ValueError(f"{other}: this state dict holds a fixed {decay}, but this DALIF learns it "
                                 f"(learn_{decay}=True); build it with learn_{decay}=False to load it")
            raise ValueError(
                f"{other}: this state dict holds the free parameter f^-1({decay}) of a learned {decay}, but this DALIF "
                f"fixes it (learn_{decay}=False); build it with learn_{decay}=True to load it. (adalif 0.1 stored a "
                f"fixed {decay} under this name too: if that is what this is, rename the key to {self._NAMES[decay, False]}.)"
            )
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def _check_step_input(self, x, name):
        if self.granularity == "channel" and (x.dim() < 2 or x.shape[1] != self.num_channels):
            raise ValueError(
                f"{name}: per-channel DALIF with num_channels={self.num_channels} expects input "
                f"[T, B, {self.num_channels}, ...] (one step [B, {self.num_channels}, ...]), "
                f"got one step of shape {tuple(x.shape)}"
            )

    def params(self) -> F.DALIFParameters:
        return F.DALIFParameters(
            self.alpha, self.beta, self.v_threshold, self.reset_mode == "soft", self.detach_reset, self.surrogate,
            per_channel=self.granularity == "channel",
        )

    def extra_repr(self) -> str:
        c = f", num_channels={self.num_channels}" if self.granularity == "channel" else ""
        return (
            f"decay_fn={self.decay_fn!r}, granularity={self.granularity!r}{c}, "
            f"v_threshold={self.v_threshold}, reset={self.reset_mode!r}, detach_reset={self.detach_reset}, "
            f"learn_alpha={self.learn_alpha}, learn_beta={self.learn_beta}, surrogate={self.surrogate}"
        )


class ARLIF(Neuron):
    """Adaptive-reset LIF (official ``XLIF``) with learnable per-layer scalars ``a`` and ``c``.

    ``adaptive_threshold=False`` fixes :math:`\\theta = V_{th}` (``a`` becomes a zero buffer: the
    "adaptive-reset-only" ablation); ``adaptive_reset=False`` resets by subtracting
    :math:`\\theta_t` with no memory ("adaptive-threshold-only"; with both off, the soft-reset
    LIF); ``carry_memory=False`` reproduces the official CIFAR10-DVS code, whose memory is not
    carried across steps (``c`` then gets no gradient and is kept as a buffer).
    """

    dynamics = F.ARLIF

    def __init__(
        self,
        decay: float = _ARLIF.decay,
        v_threshold: float = _ARLIF.v_threshold,
        a_init: float = _ARLIF.a,
        c_init: float = _ARLIF.c,
        surrogate: Surrogate = _ARLIF.surrogate,
        adaptive_reset: bool = _ARLIF.adaptive_reset,
        adaptive_threshold: bool = _ARLIF.adaptive_threshold,
        carry_memory: bool = _ARLIF.carry_memory,
        backend: Optional[str] = None,
    ) -> None:
        super().__init__(backend)
        self.decay = check_finite(decay, "decay")
        self.v_threshold = check_positive(v_threshold, "v_threshold")
        self.surrogate = get_surrogate(surrogate)
        self.adaptive_reset = bool(adaptive_reset)
        self.adaptive_threshold = bool(adaptive_threshold)
        self.carry_memory = bool(carry_memory)
        a = torch.tensor(check_finite(a_init, "a_init") if self.adaptive_threshold else 0.0)
        c = torch.tensor(check_finite(c_init, "c_init"))
        # Parameters that cannot receive a gradient are buffers, so that optimisers and DDP
        # (which rejects unused parameters) never see them.
        if self.adaptive_threshold:
            self.a = nn.Parameter(a)
        else:
            self.register_buffer("a", a)
        if self.adaptive_reset and self.carry_memory:
            self.c = nn.Parameter(c)
        else:
            self.register_buffer("c", c)

    def params(self) -> F.ARLIFParameters:
        return F.ARLIFParameters(
            self.decay, self.v_threshold, self.a, self.c, self.adaptive_reset,
            self.adaptive_threshold, self.carry_memory, self.surrogate,
        )


    def extra_repr(self) -> str:
        return (
            f"decay={self.decay}, v_threshold={self.v_threshold}, adaptive_reset={self.adaptive_reset}, "
            f"adaptive_threshold={self.adaptive_threshold}, carry_memory={self.carry_memory}, "
            f"surrogate={self.surrogate}"
        )


# PLIF's constructor takes LIF's arguments with ``init_tau`` for ``tau``: say so to introspection
# (the model registry checks neuron specs against it).
PLIF.__signature__ = inspect.signature(LIF).replace(parameters=[
    inspect.Parameter("init_tau", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=1.0 / _LIF.decay, annotation=float),
    *(p for p in inspect.signature(LIF).parameters.values() if p.name != "tau"),
])
