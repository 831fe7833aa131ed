"""CPU fast path: the whole time loop fused into one compiled kernel per direction.

``torch.compile`` (inductor's C++ backend) turns each function below into a single pass over
the neurons with the T steps unrolled inside, so forward and backward read and write each
sequence about once. A Python loop of eager ops makes a dozen passes per step instead. We write
these by hand because no library fuses a custom recurrence on the CPU: SpikingJelly's CPU path
is the eager loop. Each graph is specialised per T, dtype and surrogate. Inductor caches it on
disk, so a new process pays only a short warm-up (docs/benchmarks.md measures it).

Layouts: ``x`` ``[T, O, P, I]`` where ``P`` indexes the parameters (1 per layer, C per channel)
and the state is ``[O, P, I]``; per-layer or per-channel parameters are ``[P, 1]``. Computation
and state are in float32 for half inputs (float64 stays float64).

The backward recurrences are derived in docs/kernels.md; they match autograd through the
reference loops of :mod:`adalif.functional` (tests/test_kernels.py).
"""

from __future__ import annotations

import shutil
from typing import Optional

import torch

from ..functional.lif import charge as lif_charge
from ..surrogate import Surrogate


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _unavailable_reason() -> Optional[str]:
    if not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")):
        return "torch.compile's CPU backend needs a C++ compiler (g++, c++ or clang++) on PATH"
    return None


#: Why the compiled CPU path cannot run here, or None when it can (checked once, at import, so
#: that backend selection stays traceable by torch.compile).
UNAVAILABLE_REASON = _unavailable_reason()


# -- LIF family: H = beta V + alpha X + gamma ---------------------------------------------------
def _reset(h, fire, v_threshold, v_reset, hard):
    # hard: V = v_reset where fired; soft: V = H - V_th where fired. `hard` is a 0/1 tensor, so one
    # graph serves both modes, and the blend is exact for either value.
    return torch.where(fire, hard * v_reset + (1 - hard) * (h - v_threshold), h)


def _charge(v, x, alpha, beta, gamma, v_reset, form: str, k, tau, one_minus):
    # DA-LIF: its reference's beta V + alpha X. LIF and PLIF: the reference's own function, that is
    # SpikingJelly's expression and order, so that the rounding, and hence every spike, is the
    # reference's; the backward recurrence still uses the affine coefficients alpha and beta.
    if form == "affine":
        return beta * v + alpha * x + gamma
    return lif_charge(v, x, int(form), v_reset, k, tau, one_minus)


def _lif_forward(x, v0, alpha, beta, gamma, v_threshold, v_reset, hard, save_h: bool, form: str = "affine",
                 k=None, tau=None, one_minus=None):
    v = v0
    spikes, hs = [], []
    for t in range(x.shape[0]):
        h = _charge(v, x[t].to(v.dtype), alpha, beta, gamma, v_reset, form, k, tau, one_minus)
        fire = h >= v_threshold
        spikes.append(fire.to(x.dtype))
        if save_h:
            hs.append(h)
        v = _reset(h, fire, v_threshold, v_reset, hard)
    return torch.stack(spikes), (torch.stack(hs) if save_h else None), v


def _lif_backward(
    grad_s, grad_h, grad_v, h_seq, x, v0, alpha, beta, v_threshold, v_reset, hard, detach,
    surrogate: Surrogate, need_alpha: bool, need_beta: bool, need_gamma: bool,
):
    cd = h_seq.dtype
    keep = 1 - detach  # the reset's share of the surrogate gradient
    gv = grad_v
    grad_x = [None] * h_seq.shape[0]
    acc_a = acc_b = acc_g = torch.zeros((), dtype=cd)
    for t in reversed(range(h_seq.shape[0])):
        h = h_seq[t]
        u = h - v_threshold
        s = (u >= 0).to(cd)
        psi = surrogate.derivative(u)
        dv_dh = hard * ((1 - s) + keep * (v_reset - h) * psi) + (1 - hard) * (1 - keep * v_threshold * psi)
        gh = gv * dv_dh + grad_s[t].to(cd) * psi
        if grad_h is not None:
            gh = gh + grad_h[t]
        grad_x[t] = (gh * alpha).to(x.dtype)
        if need_alpha:
            acc_a = acc_a + gh * x[t].to(cd)
        if need_beta:
            if t == 0:
                v_prev = v0
            else:
                h_prev = h_seq[t - 1]
                v_prev = _reset(h_prev, h_prev >= v_threshold, v_threshold, v_reset, hard)
            acc_b = acc_b + gh * v_prev
        if need_gamma:
            acc_g = acc_g + gh
        gv = gh * beta
    # Per-element accumulators leave the graph unreduced: reduced inside it, inductor recomputes
    # the whole recurrence in a separate reduction kernel.
    return torch.stack(grad_x), gv, acc_a, acc_b, acc_g


def per_parameter(acc, p: int):
    """Per-element accumulator ``[O, P, I]`` (or a 0-d zero) -> ``[P]``: a deterministic torch sum."""
    return acc.sum(dim=(0, 2)) if acc.dim() == 3 else acc.expand(p).clone()


# -- AR-LIF -------------------------------------------------------------------------------------
def _arlif_forward(
    x, v0, m0, a, c, decay, v_threshold,
    adaptive_reset: bool, adaptive_threshold: bool, carry_memory: bool, save: bool,
):
    v, m = v0, m0
    tanh_a = torch.tanh(a)
    spikes, hs, ms = [], [], []
    for t in range(x.shape[0]):
        xt = x[t].to(v.dtype)
        h = decay * v + xt
        theta = v_threshold + tanh_a * torch.tanh(xt) if adaptive_threshold else v_threshold
        s = (h >= theta).to(v.dtype)
        if adaptive_reset:
            m_prev = m if carry_memory else torch.zeros_like(m)
            gate = torch.sigmoid(c * xt)
            m = gate * torch.relu(m_prev) - (1 - gate) * torch.relu(-m_prev) + (2 * s - 1) * torch.sigmoid(xt)
            v = h - s * (theta + torch.sigmoid(m))
        else:
            v = h - s * theta
        spikes.append(s.to(x.dtype))
        if save:
            hs.append(h)
            ms.append(m)
    stack = lambda seq: torch.stack(seq) if save else None  # noqa: E731
    return torch.stack(spikes), stack(hs), stack(ms) if adaptive_reset else None, v, m


def _arlif_backward(
    grad_s, grad_h, grad_m_seq, grad_v, grad_m, h_seq, m_seq, x, m0, a, c, decay, v_threshold,
    surrogate: Surrogate, adaptive_reset: bool, adaptive_threshold: bool, carry_memory: bool,
):
    cd = h_seq.dtype
    tanh_a = torch.tanh(a)
    gv, gm = grad_v, grad_m
    grad_x = [None] * h_seq.shape[0]
    acc_a = acc_c = torch.zeros((), dtype=cd)
    for t in reversed(range(h_seq.shape[0])):
        xt = x[t].to(cd)
        h = h_seq[t]
        tanh_x = torch.tanh(xt)
        theta = v_threshold + tanh_a * tanh_x if adaptive_threshold else v_threshold
        u = h - theta
        s = (u >= 0).to(cd)
        psi = surrogate.derivative(u)
        gx = 0
        if adaptive_reset:
            m = m_seq[t]
            sig_m = torch.sigmoid(m)
            sig_x = torch.sigmoid(xt)
            gm_total = gm - gv * s * sig_m * (1 - sig_m)
            if grad_m_seq is not None:
                gm_total = gm_total + grad_m_seq[t]
            gs = grad_s[t].to(cd) - gv * (theta + sig_m) + gm_total * 2 * sig_x
            gx = gm_total * (2 * s - 1) * sig_x * (1 - sig_x)
            if carry_memory:
                m_prev = m0 if t == 0 else m_seq[t - 1]
                gate = torch.sigmoid(c * xt)
                dgate = gm_total * m_prev.abs() * gate * (1 - gate)  # dM/dgate = |M_{t-1}|
                gx = gx + dgate * c
                acc_c = acc_c + dgate * xt
                gm = gm_total * (gate * (m_prev > 0).to(cd) + (1 - gate) * (m_prev < 0).to(cd))
            else:
                gm = torch.zeros_like(gm_total)
        else:
            gs = grad_s[t].to(cd) - gv * theta
        gu = gs * psi
        gh = gv + gu
        if grad_h is not None:
            gh = gh + grad_h[t]
        gx = gx + gh
        if adaptive_threshold:
            g_theta = -gv * s - gu
            gx = gx + g_theta * tanh_a * (1 - tanh_x * tanh_x)
            acc_a = acc_a + g_theta * tanh_x
        grad_x[t] = gx.to(x.dtype)
        gv = gh * decay
    return torch.stack(grad_x), gv, gm, acc_a, acc_c


# -- compiled entry points ----------------------------------------------------------------------
_COMPILED = {}


def _compiled(fn):
    """One ``torch.compile`` wrapper per function, with dynamic shapes: one graph serves every
    layer shape, so a network compiles each neuron configuration once, not once per layer."""
    if fn not in _COMPILED:
        _COMPILED[fn] = torch.compile(fn, fullgraph=True, dynamic=True)
    return _COMPILED[fn]


def _call(fn, *args):
    # Detached: the inputs are reshaped views of the caller's tensors, and dynamo would guard on
    # the shape of each view's base (a 5-D activation and a 3-D one would then need two graphs).
    # (The custom ops own autograd; nothing here needs a graph.)
    args = [a.detach() if isinstance(a, torch.Tensor) else a for a in args]
    # No duck sizing: two dimensions that happen to be equal must not be specialised as equal.
    # Each (T, dtype, surrogate, flags) is its own graph; the default limit of 8 graphs per
    # function would silently fall back to eager after a few configurations.
    with torch.fx.experimental._config.patch(use_duck_shape=False), torch._dynamo.config.patch(
        recompile_limit=512, accumulated_recompile_limit=4096
    ):
        return _compiled(fn)(*args)


def lif_forward(*args, form: str = "affine", k=None, tau=None, one_minus=None):
    return _call(_lif_forward, *args, form, k, tau, one_minus)


def lif_backward(*args):
    return _call(_lif_backward, *args)


def arlif_forward(*args):
    return _call(_arlif_forward, *args)


def arlif_backward(*args):
    return _call(_arlif_backward, *args)
