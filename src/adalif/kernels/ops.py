"""The fused neuron ops, registered with ``torch.library`` so that ``torch.compile`` of a whole
network traces through them (fake implementations) with no graph break.

Two families cover the four neurons:

* ``adalif::lif_forward`` / ``adalif::lif_backward``: :math:`H_t = \\beta V_{t-1} + \\alpha X_t + \\gamma`,
  :math:`S_t = \\Theta(H_t - V_{th})`, hard or soft reset. LIF, PLIF and DA-LIF map onto it
  (``dispatch.lif_coefficients``). Parameter gradients are returned reduced to ``[P]``.
* ``adalif::arlif_forward`` / ``adalif::arlif_backward``: AR-LIF with its ablation flags.

Layout: ``x`` is ``[T, O, P, I]``, the state ``[O, P, I]``, and per-layer (P = 1) or per-channel
parameters ``[P]``. ``impl`` names the implementation: ``"cpu"`` (C, :mod:`.cpu`) or
``"triton"`` (:mod:`.triton_impl`, on CUDA or under ``TRITON_INTERPRET=1``); both have one signature.
Forward saves only :math:`H` (and :math:`M` for AR-LIF); spikes and the reset are recomputed.
"""

from __future__ import annotations

import functools
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..surrogate import get_surrogate
from . import cpu

_EMPTY = (0,)


@functools.lru_cache(maxsize=None)
def surrogate_of(kind: str, scale: float):
    # One instance per (kind, alpha): compiled graphs guard on it, so it must not change per call.
    return get_surrogate({"name": kind, "scale": scale})


def _impl(name: str):
    if name == "cpu":
        return cpu
    if name == "triton":
        from . import triton_impl

        return triton_impl
    raise ValueError(f"impl: unknown implementation {name!r}; expected 'cpu' or 'triton'")


# -- LIF family ---------------------------------------------------------------------------------
def _lif_forward(
    x: Tensor, v0: Tensor, alpha: Tensor, beta: Tensor, gamma: Tensor,
    v_threshold: float, v_reset: float, hard: bool, detach: bool,
    sg_kind: str, sg_alpha: float, save_h: bool, impl: str, charge: str = "affine", k: Optional[Tensor] = None,
    tau: float = 0.0, one_minus: float = 0.0,
) -> Tuple[Tensor, Tensor, Tensor]:
    """Returns ``(spikes [T, O, P, I], h_seq [T, O, P, I] or empty, v_T [O, P, I])``.

    ``charge``: ``"affine"`` (:math:`\\beta V + \\alpha X + \\gamma`, DA-LIF) or SpikingJelly's LIF
    expression ``"1"``-``"4"`` of :func:`adalif.functional.lif.charge`, dividing by ``tau`` (> 0,
    LIF) or multiplying by ``k`` ([P], PLIF); ``one_minus``: form 3's :math:`1 - 1/\\tau`. Both
    implementations follow it exactly (IEEE division, no fused multiply-add)."""
    return _impl(impl).lif_forward(x, v0, alpha, beta, gamma, v_threshold, v_reset, hard, save_h, charge, k, tau,
                                   one_minus)


lif_forward = torch.library.custom_op("adalif::lif_forward", _lif_forward, mutates_args=())


@lif_forward.register_fake
def _(x, v0, alpha, beta, gamma, v_threshold, v_reset, hard, detach, sg_kind, sg_alpha, save_h, impl, charge="affine",
      k=None, tau=0.0, one_minus=0.0):
    cd = cpu.compute_dtype(x.dtype)
    h = x.new_empty(x.shape if save_h else _EMPTY, dtype=cd)
    return torch.empty_like(x), h, v0.new_empty(v0.shape, dtype=cd)


def _lif_backward(
    grad_s: Tensor, grad_h: Optional[Tensor], grad_v: Tensor, h_seq: Tensor, x: Tensor, v0: Tensor,
    alpha: Tensor, beta: Tensor, v_threshold: float, v_reset: float, hard: bool, detach: bool,
    sg_kind: str, sg_alpha: float, need_alpha: bool, need_beta: bool, need_gamma: bool, impl: str,
) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Returns ``(grad_x, grad_v0, grad_alpha [P], grad_beta [P], grad_gamma [P])``."""
    sg = surrogate_of(sg_kind, sg_alpha)
    return _impl(impl).lif_backward(
        grad_s, grad_h, grad_v, h_seq, x, v0, alpha, beta, v_threshold, v_reset, hard, detach,
        sg, need_alpha, need_beta, need_gamma,
    )


lif_backward = torch.library.custom_op("adalif::lif_backward", _lif_backward, mutates_args=())


@lif_backward.register_fake
def _(grad_s, grad_h, grad_v, h_seq, x, v0, alpha, beta, *rest):
    cd = h_seq.dtype
    p = max(alpha.numel(), beta.numel())
    return (
        torch.empty_like(x), v0.new_empty(v0.shape, dtype=cd),
        h_seq.new_empty((p,)), h_seq.new_empty((p,)), h_seq.new_empty((p,)),
    )


def _lif_setup(ctx, inputs, output):
    x, v0, alpha, beta, gamma, v_threshold, v_reset, hard, detach, sg_kind, sg_alpha, save_h, impl = inputs[:13]
    _, h_seq, _ = output
    ctx.set_materialize_grads(False)
    # The input enters the backward only through alpha's gradient: without it (LIF's fixed alpha),
    # keep a stride-0 stand-in of its shape and dtype instead of the tensor (one float per neuron
    # and step less kept for backward; the gradients do not change).
    kept = x if ctx.needs_input_grad[2] else x.new_zeros(()).expand(x.shape)
    ctx.save_for_backward(h_seq, kept, v0, alpha, beta, gamma)
    ctx.config = (v_threshold, v_reset, hard, detach, sg_kind, sg_alpha, impl)


def _lif_autograd_backward(ctx, grad_s, grad_h, grad_v):
    h_seq, x, v0, alpha, beta, gamma = ctx.saved_tensors
    v_threshold, v_reset, hard, detach, sg_kind, sg_alpha, impl = ctx.config
    if h_seq.numel() == 0:
        raise RuntimeError("adalif::lif_forward ran with save_h=False; call it with save_h=True to backpropagate")
    if grad_s is None:
        grad_s = torch.zeros_like(x)
    if grad_v is None:
        grad_v = torch.zeros_like(v0, dtype=h_seq.dtype)
    need = ctx.needs_input_grad
    gx, gv0, ga, gb, gg = (lif_backward if torch.compiler.is_compiling() else _lif_backward)(
        grad_s, grad_h, grad_v, h_seq, x, v0, alpha, beta, v_threshold, v_reset, hard, detach,
        sg_kind, sg_alpha, need[2], need[3], need[4], impl,
    )
    shaped = lambda g, p: g.reshape(p.shape).to(p.dtype) if g is not None else None  # noqa: E731
    return (
        gx, gv0.to(v0.dtype) if need[1] else None,
        shaped(ga, alpha) if need[2] else None, shaped(gb, beta) if need[3] else None,
        shaped(gg, gamma) if need[4] else None,
        None, None, None, None, None, None, None, None, None, None, None, None,
    )


torch.library.register_autograd("adalif::lif_forward", _lif_autograd_backward, setup_context=_lif_setup)


# -- AR-LIF ------------------------------------------------------------------------------------
def _arlif_forward(
    x: Tensor, v0: Tensor, m0: Tensor, a: Tensor, c: Tensor, decay: float, v_threshold: float,
    adaptive_reset: bool, adaptive_threshold: bool, carry_memory: bool,
    sg_kind: str, sg_alpha: float, save: bool, impl: str,
) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Returns ``(spikes, h_seq or empty, m_seq or empty, v_T, m_T)``."""
    flags = (adaptive_reset, adaptive_threshold, carry_memory, save)
    return _impl(impl).arlif_forward(x, v0, m0, a, c, decay, v_threshold, *flags)


arlif_forward = torch.library.custom_op("adalif::arlif_forward", _arlif_forward, mutates_args=())


@arlif_forward.register_fake
def _(x, v0, m0, a, c, decay, v_threshold, adaptive_reset, adaptive_threshold, carry_memory, sg_kind, sg_alpha, save, impl):
    cd = cpu.compute_dtype(x.dtype)
    h = x.new_empty(x.shape if save else _EMPTY, dtype=cd)
    m_seq = x.new_empty(x.shape if save and adaptive_reset else _EMPTY, dtype=cd)
    return torch.empty_like(x), h, m_seq, v0.new_empty(v0.shape, dtype=cd), m0.new_empty(m0.shape, dtype=cd)


def _arlif_backward(
    grad_s: Tensor, grad_h: Optional[Tensor], grad_m_seq: Optional[Tensor], grad_v: Tensor, grad_m: Tensor,
    h_seq: Tensor, m_seq: Tensor, x: Tensor, m0: Tensor, a: Tensor, c: Tensor, decay: float,
    v_threshold: float, adaptive_reset: bool, adaptive_threshold: bool, carry_memory: bool,
    sg_kind: str, sg_alpha: float, impl: str,
) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Returns ``(grad_x, grad_v0, grad_m0, grad_a, grad_c)``."""
    sg = surrogate_of(sg_kind, sg_alpha)
    flags = (adaptive_reset, adaptive_threshold, carry_memory)
    return _impl(impl).arlif_backward(
        grad_s, grad_h, grad_m_seq, grad_v, grad_m, h_seq, m_seq, x, m0, a, c, decay, v_threshold, sg, *flags
    )


arlif_backward = torch.library.custom_op("adalif::arlif_backward", _arlif_backward, mutates_args=())


@arlif_backward.register_fake
def _(grad_s, grad_h, grad_m_seq, grad_v, grad_m, h_seq, m_seq, x, m0, a, c, *rest):
    cd = h_seq.dtype
    return (
        torch.empty_like(x), grad_v.new_empty(grad_v.shape, dtype=cd), grad_m.new_empty(grad_m.shape, dtype=cd),
        h_seq.new_empty(()), h_seq.new_empty(()),
    )


def _arlif_setup(ctx, inputs, output):
    (x, v0, m0, a, c, decay, v_threshold, adaptive_reset, adaptive_threshold, carry_memory,
     sg_kind, sg_alpha, save, impl) = inputs
    _, h_seq, m_seq, _, _ = output
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(h_seq, m_seq, x, v0, m0, a, c)
    ctx.config = (decay, v_threshold, adaptive_reset, adaptive_threshold, carry_memory, sg_kind, sg_alpha, impl)


def _arlif_autograd_backward(ctx, grad_s, grad_h, grad_m_seq, grad_v, grad_m):
    h_seq, m_seq, x, v0, m0, a, c = ctx.saved_tensors
    decay, v_threshold, adaptive_reset, adaptive_threshold, carry_memory, sg_kind, sg_alpha, impl = ctx.config
    if h_seq.numel() == 0:
        raise RuntimeError("adalif::arlif_forward ran with save=False; call it with save=True to backpropagate")
    cd = h_seq.dtype
    # M_0 reaches nothing without the carried memory, and only the end state without the adaptive
    # reset: None then, as autograd gives through the reference loop (not zeros).
    m0_unused = (not carry_memory) if adaptive_reset else grad_m is None
    grad_s = torch.zeros_like(x) if grad_s is None else grad_s
    grad_v = torch.zeros_like(v0, dtype=cd) if grad_v is None else grad_v
    grad_m = torch.zeros_like(m0, dtype=cd) if grad_m is None else grad_m
    gx, gv0, gm0, ga, gc = (arlif_backward if torch.compiler.is_compiling() else _arlif_backward)(
        grad_s, grad_h, grad_m_seq, grad_v, grad_m, h_seq, m_seq, x, m0, a, c, decay, v_threshold,
        adaptive_reset, adaptive_threshold, carry_memory, sg_kind, sg_alpha, impl,
    )
    need = ctx.needs_input_grad
    return (
        gx, gv0.to(v0.dtype) if need[1] else None, gm0.to(m0.dtype) if need[2] and not m0_unused else None,
        ga.reshape(a.shape).to(a.dtype) if need[3] else None, gc.reshape(c.shape).to(c.dtype) if need[4] else None,
        None, None, None, None, None, None, None, None, None,
    )


torch.library.register_autograd("adalif::arlif_forward", _arlif_autograd_backward, setup_context=_arlif_setup)


# -- eager entry points ---------------------------------------------------------------------------
def refuse_double_backward(where: str) -> None:
    """Raise when a backward runs with ``create_graph=True``: the kernels' backward has no
    derivative of its own, and torch's ``once_differentiable`` would drop the second-order term
    silently when nothing else connects it (a gradient penalty)."""
    if torch.is_grad_enabled():
        raise RuntimeError(f"{where}: the fused kernels have no second derivative (a backward with "
                           f"create_graph=True); use backend='reference' for double backward")


def _eager(forward, setup, backward, family: str):
    """The same forward and backward as an autograd.Function, for eager calls: a custom op's first
    call imports torch._dynamo (about 2 s), which eager code never needs. A second derivative
    (``create_graph=True``) is refused."""
    def once(ctx, *grads):
        refuse_double_backward(f"adalif {family}")
        return backward(ctx, *grads)

    return type(f"_{family.upper()}Eager", (torch.autograd.Function,), {
        "forward": staticmethod(forward), "setup_context": staticmethod(setup), "backward": staticmethod(once),
    })


_LIFEager = _eager(_lif_forward, _lif_setup, _lif_autograd_backward, "lif")
_ARLIFEager = _eager(_arlif_forward, _arlif_setup, _arlif_autograd_backward, "arlif")
_LIF_DEFAULTS = ("affine", None, 0.0, 0.0)  # charge, k, tau, one_minus


def lif(*args):
    """``adalif::lif_forward`` with autograd: the custom op inside ``torch.compile`` (opaque to the
    graph, with its fake implementation), an equal autograd.Function in eager code."""
    args = args + _LIF_DEFAULTS[len(args) - 13:]
    return torch.ops.adalif.lif_forward(*args) if torch.compiler.is_compiling() else _LIFEager.apply(*args)


def arlif(*args):
    """``adalif::arlif_forward`` with autograd, as :func:`lif`."""
    return torch.ops.adalif.arlif_forward(*args) if torch.compiler.is_compiling() else _ARLIFEager.apply(*args)
