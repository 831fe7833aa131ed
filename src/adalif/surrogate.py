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


def heaviside(u: torch.Tensor) -> torch.Tensor:
    """:math:`\\Theta(u)`: 1 where ``u >= 0`` (so a potential equal to the threshold fires)."""
    return (u >= 0).to(u.dtype)


class _SpikeFunction(torch.autograd.Function):
    @staticmethod
    def forward(u: torch.Tensor, surrogate: "Surrogate") -> torch.Tensor:
        return heaviside(u)

    @staticmethod
    def setup_context(ctx, inputs, output):
        u, surrogate = inputs
        ctx.save_for_backward(u)
        ctx.surrogate = surrogate

    @staticmethod
    def backward(ctx, grad_output):
        (u,) = ctx.saved_tensors
        return grad_output * ctx.surrogate.derivative(u), None


@dataclass(frozen=True, init=False)
class Surrogate:
    """Base class: subclasses define :meth:`derivative`, :meth:`primitive` and their default scale."""

    scale: float
    spiking: bool = True

    #: Stable name used by the fused kernels to pick the same formula.
    kind = "base"
    default_scale = 1.0

    def __init__(self, scale: Optional[float] = None, spiking: bool = True, *, alpha: Optional[float] = None) -> None:
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

    @property
    def alpha(self) -> float:
        """Deprecated name of :attr:`scale`."""
        warnings.warn("Surrogate.alpha is deprecated: use Surrogate.scale", DeprecationWarning, stacklevel=2)
        return self.scale

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        if not self.spiking:
            return self.primitive(u)
        return _SpikeFunction.apply(u, self)

    def derivative(self, u: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def primitive(self, u: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True, init=False)
class Rectangle(Surrogate):
    """Box: :math:`\\frac{1}{\\alpha}\\,\\mathbb 1[|u| \\le \\alpha/2]` (AR-LIF official code, scale 1).

    Primitive: :math:`\\mathrm{clip}(u/\\alpha + 1/2, 0, 1)`.
    """

    default_scale = 1.0
    kind = "rectangle"

    def derivative(self, u):
        return (u.abs() <= self.scale / 2).to(u.dtype) / self.scale

    def primitive(self, u):
        return (u / self.scale + 0.5).clamp(0.0, 1.0)


@dataclass(frozen=True, init=False)
class Triangle(Surrogate):
    """ZIF / triangle: :math:`\\frac{1}{\\gamma^2}\\max(0, \\gamma - |u|)` with :math:`\\gamma` = scale.

    Equal to SpikingJelly's ``PiecewiseQuadratic(1/gamma)``; TET and the AR-LIF CIFAR10-DVS code
    use gamma 1.
    """

    default_scale = 1.0
    kind = "triangle"

    def derivative(self, u):
        return (self.scale - u.abs()).clamp_min(0.0) / (self.scale * self.scale)

    def primitive(self, u):
        g = self.scale
        uc = u.clamp(-g, g)
        inner = 0.5 + uc / g - uc * uc.abs() / (2 * g * g)
        return inner


@dataclass(frozen=True, init=False)
class Sigmoid(Surrogate):
    """:math:`\\alpha\\,\\sigma(\\alpha u)(1-\\sigma(\\alpha u))`, SpikingJelly's default (scale 4)."""

    default_scale = 4.0
    kind = "sigmoid"

    def derivative(self, u):
        sg = torch.sigmoid(self.scale * u)
        return self.scale * sg * (1.0 - sg)

    def primitive(self, u):
        return torch.sigmoid(self.scale * u)


@dataclass(frozen=True, init=False)
class ATan(Surrogate):
    """:math:`\\frac{\\alpha/2}{1 + (\\frac{\\pi}{2}\\alpha u)^2}`, peak scale/2 (snnTorch default, scale 2)."""

    default_scale = 2.0
    kind = "atan"

    def derivative(self, u):
        return (self.scale / 2) / (1.0 + (math.pi / 2 * self.scale * u) ** 2)

    def primitive(self, u):
        return torch.atan(math.pi / 2 * self.scale * u) / math.pi + 0.5


@dataclass(frozen=True, init=False)
class DspikeTanh(Surrogate):
    """Dspike-type tanh surrogate of the DA-LIF authors' code, temperature ``b`` = scale (default 3).

    The group's code fires at ``mem > 0.5`` with :math:`V_{th}=1`; the library centres the
    surrogate on the threshold instead, evaluating it at :math:`u' = u + 1/2` (docs/neurons.md):

    .. math:: \\frac{b\\,(1-\\tanh^2(b(u' - 1/2)))}{2\\tanh(b/2)}\\ \\text{on}\\ 0<u'<1,\\ 0\\ \\text{elsewhere}
    """

    default_scale = 3.0
    kind = "dspike"

    def derivative(self, u):
        b = self.scale
        inside = (u > -0.5) & (u < 0.5)
        return inside.to(u.dtype) * (b * (1.0 - torch.tanh(b * u) ** 2) / (2.0 * math.tanh(b / 2)))

    def primitive(self, u):
        b = self.scale
        uc = u.clamp(-0.5, 0.5)
        return (torch.tanh(b * uc) + math.tanh(b / 2)) / (2.0 * math.tanh(b / 2))


_BY_NAME = {cls.kind: cls for cls in (Rectangle, Triangle, Sigmoid, ATan, DspikeTanh)}
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
