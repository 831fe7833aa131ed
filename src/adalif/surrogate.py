"""Surrogate spike functions.

Every surrogate fires with the Heaviside step :math:`\\Theta(u) = 1` for :math:`u \\ge 0` in its
forward pass and replaces :math:`\\Theta'(u)` by a smooth or piecewise derivative in its
backward pass. ``u`` is always the distance to the threshold, ``u = H_t - \\theta_t``.

A surrogate is a small frozen dataclass: picklable, printable, hashable. ``scale`` is its one
shape parameter (the width, slope or temperature named in docs/neurons.md; SpikingJelly calls it
``alpha``, a name adalif keeps for DA-LIF's spatial decay: ``alpha=`` still works, deprecated). With ``spiking=False`` the
forward pass returns the smooth primitive whose exact derivative is the surrogate, which makes
``torch.autograd.gradcheck`` meaningful on whole neurons.

Every formula here has a twin in ``adalif.kernels`` (the Triton kernels evaluate the same
derivative in-kernel); :attr:`Surrogate.kind` names it for them.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Optional

import torch

__all__ = [
    "Surrogate",
    "Rectangle",
    "Triangle",
    "Sigmoid",
    "ATan",
    "DspikeTanh",
    "heaviside",
    "get_surrogate",
]


def heaviside(u: torch.Tensor, inclusive: bool = True) -> torch.Tensor:
    """:math:`\\Theta(u)`: 1 where ``u >= 0`` (so a potential equal to the threshold fires), or
    where ``u > 0`` with ``inclusive=False`` (GLIF's official code)."""
    return ((u >= 0) if inclusive else (u > 0)).to(u.dtype)


class _SpikeFunction(torch.autograd.Function):
    """The spike of any :class:`Surrogate` (a user's subclass included): the reference loop's path."""

    @staticmethod
    def forward(u: torch.Tensor, surrogate: "Surrogate") -> torch.Tensor:
        return heaviside(u, surrogate.inclusive)

    @staticmethod
    def setup_context(ctx, inputs, output):
        u, surrogate = inputs
        ctx.save_for_backward(u)
        ctx.surrogate = surrogate

    @staticmethod
    def backward(ctx, grad_output):
        (u,) = ctx.saved_tensors
        return grad_output * ctx.surrogate.derivative(u), None


class _BuiltinSpike(torch.autograd.Function):
    """The spike of a built-in surrogate, described by constants only (``kind``, ``scale``,
    ``inclusive``, ``closed``): ``torch.compile`` traces it, forward and backward, into the fused
    graph of the generic path. Same numbers as :class:`_SpikeFunction` (same formulas)."""

    @staticmethod
    def forward(u: torch.Tensor, kind: str, scale: float, inclusive: bool, closed: bool) -> torch.Tensor:
        return heaviside(u, inclusive)

    @staticmethod
    def setup_context(ctx, inputs, output):
        u, kind, scale, inclusive, closed = inputs
        ctx.save_for_backward(u)
        ctx.kind, ctx.scale, ctx.closed = kind, scale, closed

    @staticmethod
    def backward(ctx, grad_output):
        (u,) = ctx.saved_tensors
        return grad_output * DERIVATIVES[ctx.kind](u, ctx.scale, ctx.closed), None, None, None, None


def _rectangle(u, scale, closed=True):
    inside = (u.abs() <= scale / 2) if closed else (u.abs() < scale / 2)
    return inside.to(u.dtype) / scale


def _triangle(u, scale, closed=True):
    return (scale - u.abs()).clamp_min(0.0) / (scale * scale)


def _sigmoid(u, scale, closed=True):
    sg = torch.sigmoid(scale * u)
    return scale * sg * (1.0 - sg)


def _atan(u, scale, closed=True):
    return (scale / 2) / (1.0 + (math.pi / 2 * scale * u) ** 2)


def _dspike(u, scale, closed=True):
    inside = (u > -0.5) & (u < 0.5)
    return inside.to(u.dtype) * (scale * (1.0 - torch.tanh(scale * u) ** 2) / (2.0 * math.tanh(scale / 2)))


#: The derivative of each built-in surrogate kind, ``f(u, scale, closed)``: one formula, used by
#: the classes below and by the traceable spike of the generic compiled path.
DERIVATIVES = {"rectangle": _rectangle, "triangle": _triangle, "sigmoid": _sigmoid, "atan": _atan, "dspike": _dspike}


@dataclass(frozen=True, init=False, repr=False)
class Surrogate:
    """Base class: subclasses define :meth:`derivative`, :meth:`primitive` and their default scale.

    ``inclusive=False`` fires at :math:`u > 0` instead of :math:`u \\ge 0` (the two differ only
    when the potential equals the threshold exactly; GLIF's official code is strict)."""

    scale: float
    spiking: bool = True
    inclusive: bool = True

    #: Stable name used by the fused kernels to pick the same formula.
    kind = "base"
    default_scale = 1.0

    def __init__(self, scale: Optional[float] = None, spiking: bool = True, *, inclusive: bool = True,
                 alpha: Optional[float] = None) -> None:
        if alpha is not None:
            warnings.warn(f"{type(self).__name__}(alpha=...) is deprecated: the surrogate's shape parameter is "
                          f"`scale` (alpha is DA-LIF's spatial decay)", DeprecationWarning, stacklevel=2)
            if scale is not None:
                raise ValueError(f"{type(self).__name__}: give scale, not both scale and alpha")
            scale = alpha
        scale = type(self).default_scale if scale is None else scale
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"{type(self).__name__}: scale must be a positive finite number, got {scale!r}")
        object.__setattr__(self, "scale", float(scale))
        object.__setattr__(self, "spiking", bool(spiking))
        object.__setattr__(self, "inclusive", bool(inclusive))

    def __repr__(self) -> str:
        # The options appear only when they differ from their defaults, so that the repr of every
        # surrogate written before they existed (in checkpoints' neuron descriptions) is unchanged.
        extra = "".join(f", {f}={getattr(self, f)}" for f, default in self._options() if getattr(self, f) != default)
        return f"{type(self).__name__}(scale={self.scale}, spiking={self.spiking}{extra})"

    def _options(self):
        return (("inclusive", True),)

    @property
    def alpha(self) -> float:
        """Deprecated name of :attr:`scale`."""
        warnings.warn("Surrogate.alpha is deprecated: use Surrogate.scale", DeprecationWarning, stacklevel=2)
        return self.scale

    @property
    def closed(self) -> bool:
        """Whether the window of a windowed derivative includes its edges (Rectangle's option)."""
        return True

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        if not self.spiking:
            return self.primitive(u)
        if type(self) in _BUILTIN:  # exact built-ins only: a subclass may override derivative()
            return _BuiltinSpike.apply(u, self.kind, self.scale, self.inclusive, self.closed)
        return _SpikeFunction.apply(u, self)

    def derivative(self, u: torch.Tensor) -> torch.Tensor:
        return DERIVATIVES[self.kind](u, self.scale, self.closed)

    def primitive(self, u: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True, init=False, repr=False)
class Rectangle(Surrogate):
    """Box: :math:`\\frac{1}{\\alpha}\\,\\mathbb 1[|u| \\le \\alpha/2]` (AR-LIF and CLIF official code,
    scale 1). ``closed=False``: the open window :math:`|u| < \\alpha/2` (GLIF's official code).

    Primitive: :math:`\\mathrm{clip}(u/\\alpha + 1/2, 0, 1)`.
    """

    closed: bool = True
    default_scale = 1.0
    kind = "rectangle"

    def __init__(self, scale: Optional[float] = None, spiking: bool = True, *, inclusive: bool = True,
                 closed: bool = True, alpha: Optional[float] = None) -> None:
        super().__init__(scale, spiking, inclusive=inclusive, alpha=alpha)
        object.__setattr__(self, "closed", bool(closed))

    def _options(self):
        return (("inclusive", True), ("closed", True))

    def primitive(self, u):
        return (u / self.scale + 0.5).clamp(0.0, 1.0)


@dataclass(frozen=True, init=False, repr=False)
class Triangle(Surrogate):
    """ZIF / triangle: :math:`\\frac{1}{\\gamma^2}\\max(0, \\gamma - |u|)` with :math:`\\gamma` = scale.

    Equal to SpikingJelly's ``PiecewiseQuadratic(1/gamma)``; TET and the AR-LIF CIFAR10-DVS code
    use gamma 1.
    """

    default_scale = 1.0
    kind = "triangle"

    def primitive(self, u):
        g = self.scale
        uc = u.clamp(-g, g)
        inner = 0.5 + uc / g - uc * uc.abs() / (2 * g * g)
        return inner


@dataclass(frozen=True, init=False, repr=False)
class Sigmoid(Surrogate):
    """:math:`\\alpha\\,\\sigma(\\alpha u)(1-\\sigma(\\alpha u))`, SpikingJelly's default (scale 4)."""

    default_scale = 4.0
    kind = "sigmoid"

    def primitive(self, u):
        return torch.sigmoid(self.scale * u)


@dataclass(frozen=True, init=False, repr=False)
class ATan(Surrogate):
    """:math:`\\frac{\\alpha/2}{1 + (\\frac{\\pi}{2}\\alpha u)^2}`, peak scale/2 (snnTorch default, scale 2)."""

    default_scale = 2.0
    kind = "atan"

    def primitive(self, u):
        return torch.atan(math.pi / 2 * self.scale * u) / math.pi + 0.5


@dataclass(frozen=True, init=False, repr=False)
class DspikeTanh(Surrogate):
    """Dspike-type tanh surrogate of the DA-LIF authors' code, temperature ``b`` = scale (default 3).

    The group's code fires at ``mem > 0.5`` with :math:`V_{th}=1`; the library centres the
    surrogate on the threshold instead, evaluating it at :math:`u' = u + 1/2` (docs/neurons.md):

    .. math:: \\frac{b\\,(1-\\tanh^2(b(u' - 1/2)))}{2\\tanh(b/2)}\\ \\text{on}\\ 0<u'<1,\\ 0\\ \\text{elsewhere}
    """

    default_scale = 3.0
    kind = "dspike"

    def primitive(self, u):
        b = self.scale
        uc = u.clamp(-0.5, 0.5)
        return (torch.tanh(b * uc) + math.tanh(b / 2)) / (2.0 * math.tanh(b / 2))


_BUILTIN = (Rectangle, Triangle, Sigmoid, ATan, DspikeTanh)
_BY_NAME = {cls.kind: cls for cls in _BUILTIN}
_BY_NAME.update({"zif": Triangle, "dspike_tanh": DspikeTanh})


def get_surrogate(spec: "Surrogate | str | dict") -> Surrogate:
    """Build a surrogate from an instance, a name (``"atan"``) or ``{"name": "atan", "scale": 2}``."""
    if isinstance(spec, Surrogate):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if isinstance(spec, dict):
        kwargs = dict(spec)
        name = str(kwargs.pop("name", "")).lower()
        if name not in _BY_NAME:
            raise ValueError(f"surrogate: unknown name {name!r}; expected one of {sorted(_BY_NAME)}")
        return _BY_NAME[name](**kwargs)
    raise TypeError(f"surrogate: expected a Surrogate, a name or a dict, got {type(spec).__name__}")
