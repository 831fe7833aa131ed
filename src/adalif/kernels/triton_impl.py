"""Triton kernels: one program per block of neurons, the T steps looped inside the kernel.

State and backward carries are float32 whatever the input dtype (float64 for float64 input).
Forward stores the spikes, optionally :math:`H` (and :math:`M` for AR-LIF), and the final state;
backward recomputes spikes, the reset and :math:`V_{t-1}` from :math:`H`. Gradients of
learnable parameters are accumulated per element and reduced with torch afterwards: no atomics,
deterministic, correct for any number of blocks. Each kernel has a twin in :mod:`.cpu` with the
same equations; tests hold both to the reference loops of :mod:`adalif.functional`, including
through Triton's CPU interpreter (``TRITON_INTERPRET=1``).
"""

from __future__ import annotations


import torch
import triton
import triton.language as tl

from .cpu import compute_dtype as _cd
from .cpu import ROUNDING, surrogate_args

BLOCK = 1024


@triton.jit
def _sigmoid(z):
    return 1.0 / (1.0 + tl.exp(-z))


@triton.jit
def _tanh(z):
    # 1 - 2 / (exp(2z) + 1): exact limits at +-inf, and no libdevice dependency (the CPU
    # interpreter runs it too).
    return 1.0 - 2.0 / (tl.exp(2.0 * z) + 1.0)


@triton.jit
def _surrogate(u, KIND: tl.constexpr, a, c):
    """The derivative of adalif.surrogate's formulas; ``c`` is tanh(a/2) for Dspike."""
    if KIND == 0:
        d = tl.where(tl.abs(u) <= a / 2, 1.0 / a, 0.0)
    elif KIND == 1:
        d = tl.maximum(a - tl.abs(u), 0.0) / (a * a)
    elif KIND == 2:
        sg = _sigmoid(a * u)
        d = a * sg * (1.0 - sg)
    elif KIND == 3:
        z = 1.5707963267948966 * a * u
        d = (a / 2) / (1.0 + z * z)
    else:
        t = _tanh(a * u)
        d = tl.where((u > -0.5) & (u < 0.5), a * (1.0 - t * t) / (2.0 * c), 0.0)
    return d


@triton.jit
def _round_state(v, ROUND: tl.constexpr):
    """The state rounded to the input's half type after each step (1: bfloat16, 2: float16; 0: not),
    to nearest even in bits as torch rounds (native_template.h: round_state; docs/kernels.md)."""
    if ROUND == 1:
        u = v.to(tl.uint32, bitcast=True)
        u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
        v = tl.where(v != v, v, u.to(tl.float32, bitcast=True))
    elif ROUND == 2:
        v = v.to(tl.float16).to(tl.float32)
    return v


@triton.jit
def _step_base(t, N):
    """Offset of step ``t`` in a ``[T, N]`` tensor, in 64 bits: ``t * N`` in 32-bit arithmetic
    overflows once T·N reaches 2^31 elements (an ImageNet stem at a large batch)."""
    return tl.cast(t, tl.int64) * N


@triton.jit
def _param(ptr, offs, I, P, mask, DT: tl.constexpr):
    # Per-layer parameters have one element, per-channel ones P: channel = (n // I) % P.
    idx = tl.where(P > 1, (offs // I) % P, 0)
    return tl.load(ptr + idx, mask=mask, other=0.0).to(DT)


# -- LIF family ---------------------------------------------------------------------------------
@triton.jit
def _scaled(a, k, tau, DIVIDE: tl.constexpr):
    # LIF divides by tau (IEEE division, as torch does), PLIF multiplies by k.
    if DIVIDE:
        r = tl.math.div_rn(a, tau)
    else:
        r = a * k
    return r


@triton.jit
def _lif_fwd_kernel(
    x_ptr, v0_ptr, a_ptr, b_ptr, g_ptr, k_ptr, s_ptr, h_ptr, v_ptr,
    N, T, I, Pa, Pb, Pg, Pk, v_threshold, v_reset, hard, tau, one_minus,
    SAVE_H: tl.constexpr, FORM: tl.constexpr, DIVIDE: tl.constexpr, DT: tl.constexpr, BLOCK: tl.constexpr,
    ROUND: tl.constexpr = 0,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    alpha = _param(a_ptr, offs, I, Pa, mask, DT)
    beta = _param(b_ptr, offs, I, Pb, mask, DT)
    gamma = _param(g_ptr, offs, I, Pg, mask, DT)
    k = _param(k_ptr, offs, I, Pk, mask, DT)
    v = tl.load(v0_ptr + offs, mask=mask, other=0.0).to(DT)
    for t in range(T):
        base = _step_base(t, N)
        x = tl.load(x_ptr + base + offs, mask=mask, other=0.0).to(DT)
        # FORM 0: DA-LIF's beta V + alpha X (+ gamma); 1-4: SpikingJelly's LIF expressions in its
        # order (adalif.functional.lif.charge), so that the rounding is the reference's.
        if FORM == 0:
            h = beta * v + alpha * x + gamma
        elif FORM == 1:
            h = v + _scaled(x - v, k, tau, DIVIDE)
        elif FORM == 2:
            h = v + _scaled(x - (v - v_reset), k, tau, DIVIDE)
        elif FORM == 3:
            if DIVIDE:
                h = v * one_minus + x
            else:
                h = v * (1.0 - k) + x
        else:
            h = v - _scaled(v - v_reset, k, tau, DIVIDE) + x
        fire = h >= v_threshold
        tl.store(s_ptr + base + offs, tl.where(fire, 1.0, 0.0).to(s_ptr.dtype.element_ty), mask=mask)
        if SAVE_H:
            tl.store(h_ptr + base + offs, h, mask=mask)
        v = tl.where(fire, hard * v_reset + (1.0 - hard) * (h - v_threshold), h)
        v = _round_state(v, ROUND)
    tl.store(v_ptr + offs, v, mask=mask)


@triton.jit
def _lif_bwd_kernel(
    gs_ptr, gh_ptr, gv_ptr, h_ptr, x_ptr, v0_ptr, a_ptr, b_ptr,
    gx_ptr, gv0_ptr, acc_a_ptr, acc_b_ptr, acc_g_ptr,
    N, T, I, Pa, Pb, v_threshold, v_reset, hard, keep, sg_a, sg_c,
    KIND: tl.constexpr, HAS_GH: tl.constexpr, NEED_A: tl.constexpr, NEED_B: tl.constexpr,
    NEED_G: tl.constexpr, DT: tl.constexpr, BLOCK: tl.constexpr, ROUND: tl.constexpr = 0,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    alpha = _param(a_ptr, offs, I, Pa, mask, DT)
    beta = _param(b_ptr, offs, I, Pb, mask, DT)
    gv = tl.load(gv_ptr + offs, mask=mask, other=0.0).to(DT)
    v0 = tl.load(v0_ptr + offs, mask=mask, other=0.0).to(DT)
    acc_a = tl.zeros([BLOCK], DT)
    acc_b = tl.zeros([BLOCK], DT)
    acc_g = tl.zeros([BLOCK], DT)
    for i in range(T):
        t = T - 1 - i
        base = _step_base(t, N)
        h = tl.load(h_ptr + base + offs, mask=mask, other=0.0).to(DT)
        u = h - v_threshold
        s = tl.where(u >= 0, 1.0, 0.0)
        psi = _surrogate(u, KIND, sg_a, sg_c)
        dv_dh = hard * ((1.0 - s) + keep * (v_reset - h) * psi) + (1.0 - hard) * (1.0 - keep * v_threshold * psi)
        gh = gv * dv_dh + tl.load(gs_ptr + base + offs, mask=mask, other=0.0).to(DT) * psi
        if HAS_GH:
            gh += tl.load(gh_ptr + base + offs, mask=mask, other=0.0).to(DT)
        tl.store(gx_ptr + base + offs, (gh * alpha).to(gx_ptr.dtype.element_ty), mask=mask)
        if NEED_A:
            acc_a += gh * tl.load(x_ptr + base + offs, mask=mask, other=0.0).to(DT)
        if NEED_B:
            has_prev = tl.full([BLOCK], t, tl.int32) > 0  # a tensor: the interpreter needs tensor masks
            h_prev = tl.load(h_ptr + base - N + offs, mask=mask & has_prev, other=0.0).to(DT)
            v_prev = tl.where(h_prev >= v_threshold, hard * v_reset + (1.0 - hard) * (h_prev - v_threshold), h_prev)
            v_prev = _round_state(v_prev, ROUND)
            acc_b += gh * tl.where(has_prev, v_prev, v0)
        if NEED_G:
            acc_g += gh
        gv = gh * beta
    tl.store(gv0_ptr + offs, gv, mask=mask)
    if NEED_A:
        tl.store(acc_a_ptr + offs, acc_a, mask=mask)
    if NEED_B:
        tl.store(acc_b_ptr + offs, acc_b, mask=mask)
    if NEED_G:
        tl.store(acc_g_ptr + offs, acc_g, mask=mask)


def _dt(dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def _grid(n):
    return (triton.cdiv(n, BLOCK),)


def lif_forward(x, v0, alpha, beta, gamma, v_threshold, v_reset, hard, save_h, charge="affine", k=None, tau=0.0,
                one_minus=0.0):
    """``charge``: as :func:`adalif.kernels.ops.lif_forward` ("affine" or SpikingJelly's form "1"-"4")."""
    T, O, P, I = x.shape
    n = O * P * I
    cd = _cd(x.dtype)
    x = x.contiguous()
    spikes = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    h_seq = torch.empty(x.shape if save_h else (0,), dtype=cd, device=x.device)
    v = torch.empty((O, P, I), dtype=cd, device=x.device)
    params = [p.to(cd).contiguous() for p in (alpha, beta, gamma, alpha if k is None else k.reshape(-1))]
    # No contraction of a multiply and an add into one fused multiply-add: the reference rounds both.
    _lif_fwd_kernel[_grid(n)](
        x, v0.to(cd).contiguous(), *params, spikes, h_seq, v, n, T, I,
        *(p.numel() for p in params), float(v_threshold), float(v_reset), float(hard), float(tau or 1.0),
        float(one_minus), SAVE_H=save_h, FORM=0 if charge == "affine" else int(charge), DIVIDE=bool(tau > 0),
        ROUND=ROUNDING.get(x.dtype, 0),
        DT=_dt(x.dtype), BLOCK=BLOCK, enable_fp_fusion=False,
    )
    return spikes, h_seq, v


def lif_backward(grad_s, grad_h, grad_v, h_seq, x, v0, alpha, beta, v_threshold, v_reset, hard, detach, sg,
                 need_alpha, need_beta, need_gamma):
    T, O, P, I = x.shape
    n = O * P * I
    cd = h_seq.dtype
    grad_x = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    grad_v0 = torch.empty((O, P, I), dtype=cd, device=x.device)
    acc = [torch.empty((O, P, I) if need else (1,), dtype=cd, device=x.device) for need in (need_alpha, need_beta, need_gamma)]
    kind, sg_a, sg_c = surrogate_args(sg)
    has_gh = grad_h is not None
    a, b = alpha.to(cd).contiguous(), beta.to(cd).contiguous()
    _lif_bwd_kernel[_grid(n)](
        grad_s.contiguous(), grad_h.contiguous() if has_gh else h_seq, grad_v.to(cd).contiguous(), h_seq,
        x.contiguous() if need_alpha else h_seq, v0.to(cd).contiguous(), a, b, grad_x, grad_v0, *acc,
        n, T, I, a.numel(), b.numel(), float(v_threshold), float(v_reset), float(hard), float(not detach), sg_a, sg_c,
        KIND=kind, HAS_GH=has_gh, NEED_A=need_alpha, NEED_B=need_beta, NEED_G=need_gamma,
        ROUND=ROUNDING.get(x.dtype, 0),
        DT=_dt(cd), BLOCK=BLOCK,
    )
    p = max(alpha.numel(), beta.numel())
    reduce = lambda t, need: t.sum(dim=(0, 2)) if need else torch.zeros(p, dtype=cd, device=x.device)  # noqa: E731
    return grad_x, grad_v0, *(reduce(t, need) for t, need in zip(acc, (need_alpha, need_beta, need_gamma)))


# -- AR-LIF -------------------------------------------------------------------------------------
@triton.jit
def _arlif_fwd_kernel(
    x_ptr, v0_ptr, m0_ptr, a_ptr, c_ptr, s_ptr, h_ptr, ms_ptr, v_ptr, m_ptr,
    N, T, decay, v_threshold,
    ADAPTIVE_RESET: tl.constexpr, ADAPTIVE_THRESHOLD: tl.constexpr, CARRY: tl.constexpr,
    SAVE: tl.constexpr, DT: tl.constexpr, BLOCK: tl.constexpr, ROUND: tl.constexpr = 0,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    tanh_a = _tanh(tl.load(a_ptr).to(DT))
    c = tl.load(c_ptr).to(DT)
    v = tl.load(v0_ptr + offs, mask=mask, other=0.0).to(DT)
    m = tl.load(m0_ptr + offs, mask=mask, other=0.0).to(DT)
    for t in range(T):
        base = _step_base(t, N)
        x = tl.load(x_ptr + base + offs, mask=mask, other=0.0).to(DT)
        h = decay * v + x
        theta = v_threshold + tl.zeros([BLOCK], DT)
        if ADAPTIVE_THRESHOLD:
            theta += tanh_a * _tanh(x)
        s = tl.where(h >= theta, 1.0, 0.0)
        if ADAPTIVE_RESET:
            m_prev = m
            if not CARRY:
                m_prev = tl.zeros([BLOCK], DT)
            gate = _sigmoid(c * x)
            m = gate * tl.maximum(m_prev, 0.0) - (1.0 - gate) * tl.maximum(-m_prev, 0.0) + (2.0 * s - 1.0) * _sigmoid(x)
            v = h - s * (theta + _sigmoid(m))
            m = _round_state(m, ROUND)
            if SAVE:
                tl.store(ms_ptr + base + offs, m, mask=mask)
        else:
            v = h - s * theta
        v = _round_state(v, ROUND)
        tl.store(s_ptr + base + offs, s.to(s_ptr.dtype.element_ty), mask=mask)
        if SAVE:
            tl.store(h_ptr + base + offs, h, mask=mask)
    tl.store(v_ptr + offs, v, mask=mask)
    tl.store(m_ptr + offs, m, mask=mask)


@triton.jit
def _arlif_bwd_kernel(
    gs_ptr, gh_ptr, gms_ptr, gv_ptr, gm_ptr, h_ptr, ms_ptr, x_ptr, m0_ptr, a_ptr, c_ptr,
    gx_ptr, gv0_ptr, gm0_ptr, acc_a_ptr, acc_c_ptr,
    N, T, decay, v_threshold, sg_a, sg_c,
    KIND: tl.constexpr, HAS_GH: tl.constexpr, HAS_GM: tl.constexpr, ADAPTIVE_RESET: tl.constexpr,
    ADAPTIVE_THRESHOLD: tl.constexpr, CARRY: tl.constexpr, DT: tl.constexpr, BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    tanh_a = _tanh(tl.load(a_ptr).to(DT))
    c = tl.load(c_ptr).to(DT)
    gv = tl.load(gv_ptr + offs, mask=mask, other=0.0).to(DT)
    gm = tl.load(gm_ptr + offs, mask=mask, other=0.0).to(DT)
    m0 = tl.load(m0_ptr + offs, mask=mask, other=0.0).to(DT)
    acc_a = tl.zeros([BLOCK], DT)
    acc_c = tl.zeros([BLOCK], DT)
    for i in range(T):
        t = T - 1 - i
        base = _step_base(t, N)
        x = tl.load(x_ptr + base + offs, mask=mask, other=0.0).to(DT)
        h = tl.load(h_ptr + base + offs, mask=mask, other=0.0).to(DT)
        tanh_x = _tanh(x)
        theta = v_threshold + tl.zeros([BLOCK], DT)
        if ADAPTIVE_THRESHOLD:
            theta += tanh_a * tanh_x
        u = h - theta
        s = tl.where(u >= 0, 1.0, 0.0)
        psi = _surrogate(u, KIND, sg_a, sg_c)
        g_s = tl.load(gs_ptr + base + offs, mask=mask, other=0.0).to(DT)
        gx = tl.zeros([BLOCK], DT)
        if ADAPTIVE_RESET:
            m = tl.load(ms_ptr + base + offs, mask=mask, other=0.0).to(DT)
            sig_m = _sigmoid(m)
            sig_x = _sigmoid(x)
            gm_total = gm - gv * s * sig_m * (1.0 - sig_m)
            if HAS_GM:
                gm_total += tl.load(gms_ptr + base + offs, mask=mask, other=0.0).to(DT)
            g_s = g_s - gv * (theta + sig_m) + gm_total * 2.0 * sig_x
            gx = gm_total * (2.0 * s - 1.0) * sig_x * (1.0 - sig_x)
            if CARRY:
                has_prev = tl.full([BLOCK], t, tl.int32) > 0
                m_prev = tl.load(ms_ptr + base - N + offs, mask=mask & has_prev, other=0.0).to(DT)
                m_prev = tl.where(has_prev, m_prev, m0)
                gate = _sigmoid(c * x)
                dgate = gm_total * tl.abs(m_prev) * gate * (1.0 - gate)
                gx += dgate * c
                acc_c += dgate * x
                gm = gm_total * (gate * tl.where(m_prev > 0, 1.0, 0.0) + (1.0 - gate) * tl.where(m_prev < 0, 1.0, 0.0))
            else:
                gm = tl.zeros([BLOCK], DT)
        else:
            g_s = g_s - gv * theta
        gu = g_s * psi
        gh = gv + gu
        if HAS_GH:
            gh += tl.load(gh_ptr + base + offs, mask=mask, other=0.0).to(DT)
        gx += gh
        if ADAPTIVE_THRESHOLD:
            g_theta = -gv * s - gu
            gx += g_theta * tanh_a * (1.0 - tanh_x * tanh_x)
            acc_a += g_theta * tanh_x
        tl.store(gx_ptr + base + offs, gx.to(gx_ptr.dtype.element_ty), mask=mask)
        gv = gh * decay
    tl.store(gv0_ptr + offs, gv, mask=mask)
    tl.store(gm0_ptr + offs, gm, mask=mask)
    tl.store(acc_a_ptr + offs, acc_a, mask=mask)
    tl.store(acc_c_ptr + offs, acc_c, mask=mask)


def arlif_forward(x, v0, m0, a, c, decay, v_threshold, adaptive_reset, adaptive_threshold, carry_memory, save):
    T = x.shape[0]
    n = x[0].numel()
    cd = _cd(x.dtype)
    x = x.contiguous()
    spikes = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    h_seq = torch.empty(x.shape if save else (0,), dtype=cd, device=x.device)
    m_seq = torch.empty(x.shape if save and adaptive_reset else (0,), dtype=cd, device=x.device)
    v = torch.empty(x.shape[1:], dtype=cd, device=x.device)
    m = torch.empty(x.shape[1:], dtype=cd, device=x.device)
    _arlif_fwd_kernel[_grid(n)](
        x, v0.to(cd).contiguous(), m0.to(cd).contiguous(), a.to(cd).reshape(1), c.to(cd).reshape(1),
        spikes, h_seq, m_seq, v, m, n, T, float(decay), float(v_threshold),
        ADAPTIVE_RESET=adaptive_reset, ADAPTIVE_THRESHOLD=adaptive_threshold, CARRY=carry_memory,
        SAVE=save, DT=_dt(x.dtype), BLOCK=BLOCK, enable_fp_fusion=False, ROUND=ROUNDING.get(x.dtype, 0),
    )
    return spikes, h_seq, m_seq, v, m


def arlif_backward(grad_s, grad_h, grad_m_seq, grad_v, grad_m, h_seq, m_seq, x, m0, a, c, decay, v_threshold, sg,
                   adaptive_reset, adaptive_threshold, carry_memory):
    n = x[0].numel()
    cd = h_seq.dtype
    grad_x = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    grad_v0 = torch.empty(x.shape[1:], dtype=cd, device=x.device)
    grad_m0 = torch.empty(x.shape[1:], dtype=cd, device=x.device)
    acc_a = torch.empty(x.shape[1:], dtype=cd, device=x.device)
    acc_c = torch.empty(x.shape[1:], dtype=cd, device=x.device)
    kind, sg_a, sg_c = surrogate_args(sg)
    tanh_a = torch.tanh(a.to(cd))
    _arlif_bwd_kernel[_grid(n)](
        grad_s.contiguous(), grad_h.contiguous() if grad_h is not None else h_seq,
        grad_m_seq.contiguous() if grad_m_seq is not None else h_seq,
        grad_v.to(cd).contiguous(), grad_m.to(cd).contiguous(), h_seq,
        m_seq if adaptive_reset else h_seq, x.contiguous(), m0.to(cd).contiguous(),
        a.to(cd).reshape(1), c.to(cd).reshape(1), grad_x, grad_v0, grad_m0, acc_a, acc_c,
        n, x.shape[0], float(decay), float(v_threshold), sg_a, sg_c,
        KIND=kind, HAS_GH=grad_h is not None, HAS_GM=grad_m_seq is not None, ADAPTIVE_RESET=adaptive_reset,
        ADAPTIVE_THRESHOLD=adaptive_threshold, CARRY=carry_memory, DT=_dt(cd), BLOCK=BLOCK,
    )
    grad_a = (1 - tanh_a * tanh_a).reshape(()) * acc_a.sum()
    return grad_x, grad_v0, grad_m0, grad_a, acc_c.sum()
