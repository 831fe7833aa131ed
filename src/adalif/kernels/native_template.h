/* One dtype's kernels; native.c includes this file once per dtype with R (the compute type),
 * NAME(x) (the suffixed symbol), EXP, FABS and FLOOR (libm's functions of R) and FAST_EXP_OK defined.
 *
 * Each kernel runs the neurons [lo, hi) of a [T, N] sequence (neuron n's parameter is index
 * (n / inner) % P) in blocks of BLOCK neurons, shared among nthreads OpenMP threads. In each block the
 * step loop is outside and the neuron loop inside, so that the compiler vectorises the inner loop
 * while the block's state stays in the cache. No two threads write the same memory, so the result
 * does not depend on the number of threads. Inner
 * loops have no call and no branch on a run-time option (each option is a loop of its own, or a
 * select), which is what lets gcc vectorise them.
 *
 * Exactness: the forward follows the reference loops' expressions in their order (no multiply-add
 * is fused: -ffp-contract=off), so H, V and every spike round as torch's do. AR-LIF's tanh X is
 * computed by torch, one step at a time as the reference does, and passed in; its sigmoids (of X, cX
 * and M) are torch's own function of each neuron: its vectorised one (native_math.h), or libm's
 * where torch runs its scalar loop (the call with libm set, cpu.scalar_ranges), or, on a build whose
 * sigmoid is not SLEEF's, computed by torch and passed in. The backward's surrogate derivative and
 * sigmoid(M) use NAME(fast_exp), a few ulp from exp: gradients agree with autograd through the reference to
 * rounding (the tests allow 1e-5), while the spikes the backward recomputes are the forward's. */

static inline int64_t NAME(min64)(int64_t a, int64_t b) { return a < b ? a : b; }

/* The state rounded to the input's half type after each step (round_mode 1: bfloat16, 2: float16;
 * 0: none), as the reference loop keeps it: so that a sequence run in chunks (checkpoint: time),
 * each chunk starting from the half-precision state the last one returned, gives the numbers of
 * one run. Round to nearest even, as torch's conversions. */
static __attribute__((noinline)) R NAME(round_state)(R v, int round_mode) {
    if (round_mode == 1) {
        float f = (float)v;
        uint32_t u;
        memcpy(&u, &f, sizeof u);
        if ((u & 0x7fffffffu) > 0x7f800000u) return v;  /* NaN stays NaN */
        u += 0x7fffu + ((u >> 16) & 1u);
        u &= 0xffff0000u;
        memcpy(&f, &u, sizeof f);
        return (R)f;
    }
    if (round_mode == 2) return (R)(float)(_Float16)(float)v;
    return v;
}

#include "native_math.h"

/* Cephes' polynomial on a range reduction by ln 2 (relative error about 1e-7 in float32), in
 * operations gcc vectorises. Used by the backward only. */
static inline R NAME(fast_exp)(R x) {
#if !FAST_EXP_OK
    return EXP(x);
#else
    x = x < (R)-87 ? (R)-87 : (x > (R)88 ? (R)88 : x);
    const R n = FLOOR(x * (R)1.44269504088896341 + (R)0.5);
    R r = x - n * (R)0.693359375;
    r = r - n * (R)-2.12194440e-4;
    R p = (R)1.9875691500e-4;
    p = p * r + (R)1.3981999507e-3;
    p = p * r + (R)8.3334519073e-3;
    p = p * r + (R)4.1665795894e-2;
    p = p * r + (R)1.6666665459e-1;
    p = p * r + (R)5.0000001201e-1;
    p = p * (r * r) + r + (R)1;
    const int32_t e = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &e, sizeof scale);
    return p * (R)scale;
#endif
}

static inline R NAME(fast_tanh)(R x) {
    const R e = NAME(fast_exp)((R)2 * x);
    return (R)1 - (R)2 / (e + (R)1);
}

/* psi[j] = the derivative of adalif.surrogate's built-in formula `kind` at u[j]; c is tanh(a / 2)
 * (Dspike). One loop per kind. */
static inline void NAME(surrogate)(int kind, const R *u, R *psi, int64_t len, R a, R c) {
    int64_t j;
    switch (kind) {
    case 0:
        for (j = 0; j < len; j++) psi[j] = FABS(u[j]) <= a / 2 ? (R)1 / a : (R)0;
        break;
    case 1:
        for (j = 0; j < len; j++) { const R d = a - FABS(u[j]); psi[j] = (d > 0 ? d : (R)0) / (a * a); }
        break;
    case 2:
        for (j = 0; j < len; j++) {
            const R sg = (R)1 / ((R)1 + NAME(fast_exp)(-(a * u[j])));
            psi[j] = a * sg * ((R)1 - sg);
        }
        break;
    case 3:
        for (j = 0; j < len; j++) { const R z = (R)1.5707963267948966 * a * u[j]; psi[j] = (a / 2) / ((R)1 + z * z); }
        break;
    default:
        for (j = 0; j < len; j++) {
            const R t = NAME(fast_tanh)(a * u[j]);
            psi[j] = (u[j] > (R)-0.5 && u[j] < (R)0.5) ? a * ((R)1 - t * t) / ((R)2 * c) : (R)0;
        }
    }
}

/* LIF family forward: form 0 is DA-LIF's beta V + alpha X + gamma; 1-4 are SpikingJelly's LIF
 * expressions (adalif.functional.lif.charge), dividing by tau when divide, else multiplying by k. */
#define LIF_STEP(EXPR)                                                                               \
    for (int64_t j = 0; j < len; j++) {                                                              \
        const R vj = v[j], xj = xt[j];                                                              \
        const R h = (EXPR);                                                                          \
        const int fire = h >= v_threshold;                                                           \
        st[j] = fire ? (R)1 : (R)0;                                                                  \
        ht[j] = h;                                                                                   \
        v[j] = fire ? (hard ? v_reset : h - v_threshold) : h;                                        \
    }

void NAME(lif_forward)(const R *x, const R *v0, const R *alpha, const R *beta, const R *gamma, const R *k,
                       R *spikes, R *h_seq, R *v_out, int64_t T, int64_t N, int64_t inner,
                       int64_t Pa, int64_t Pb, int64_t Pg, int64_t Pk, R v_threshold, R v_reset, int hard,
                       R tau, R one_minus, int form, int divide, int save_h, int round_mode, int64_t lo, int64_t hi,
                       int nthreads) {
    const int64_t nblocks = (hi - lo + BLOCK - 1) / BLOCK;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        const int64_t b0 = lo + blk * BLOCK;
        R v[BLOCK], A[BLOCK], B[BLOCK], G[BLOCK], K[BLOCK], OM[BLOCK], scratch[BLOCK];
        const int64_t len = NAME(min64)(BLOCK, hi - b0);
        for (int64_t j = 0; j < len; j++) {
            const int64_t n = b0 + j;
            A[j] = alpha[Pa > 1 ? (n / inner) % Pa : 0];
            B[j] = beta[Pb > 1 ? (n / inner) % Pb : 0];
            G[j] = gamma[Pg > 1 ? (n / inner) % Pg : 0];
            K[j] = k[Pk > 1 ? (n / inner) % Pk : 0];
            OM[j] = divide ? one_minus : (R)1 - K[j];
            v[j] = v0[n];
        }
        for (int64_t t = 0; t < T; t++) {
            const R *xt = x + t * N + b0;
            R *st = spikes + t * N + b0;
            R *ht = save_h ? h_seq + t * N + b0 : scratch;
            switch (form * 2 + (divide != 0)) {
            case 0: case 1: LIF_STEP(B[j] * vj + A[j] * xj + G[j]) break;
            case 2: LIF_STEP(vj + (xj - vj) * K[j]) break;
            case 3: LIF_STEP(vj + (xj - vj) / tau) break;
            case 4: LIF_STEP(vj + (xj - (vj - v_reset)) * K[j]) break;
            case 5: LIF_STEP(vj + (xj - (vj - v_reset)) / tau) break;
            case 6: case 7: LIF_STEP(vj * OM[j] + xj) break;
            case 8: LIF_STEP(vj - (vj - v_reset) * K[j] + xj) break;
            default: LIF_STEP(vj - (vj - v_reset) / tau + xj) break;
            }
            if (round_mode)
                for (int64_t j = 0; j < len; j++) v[j] = NAME(round_state)(v[j], round_mode);
        }
        for (int64_t j = 0; j < len; j++) v_out[b0 + j] = v[j];
    }
}
#undef LIF_STEP

/* LIF family backward (docs/kernels.md derives it): grad_x, the gradient of V_0, and per-neuron
 * accumulators of alpha's, beta's and gamma's gradients (each NULL when not needed; x may be NULL
 * when alpha's is not, grad_h when the potentials' gradient is zero). */
void NAME(lif_backward)(const R *grad_s, const R *grad_h, const R *grad_v, const R *h_seq, const R *x,
                        const R *v0, const R *alpha, const R *beta, R *grad_x, R *grad_v0,
                        R *acc_a, R *acc_b, R *acc_g, int64_t T, int64_t N, int64_t inner, int64_t Pa, int64_t Pb,
                        R v_threshold, R v_reset, int hard, R keep, int kind, R sg_a, R sg_c, int round_mode,
                        int64_t lo, int64_t hi, int nthreads) {
    const int64_t nblocks = (hi - lo + BLOCK - 1) / BLOCK;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        const int64_t b0 = lo + blk * BLOCK;
        R gv[BLOCK], A[BLOCK], B[BLOCK], ca[BLOCK], cb[BLOCK], cg[BLOCK], u[BLOCK], psi[BLOCK], vp[BLOCK], zero[BLOCK];
        for (int64_t j = 0; j < BLOCK; j++) zero[j] = 0;
        const int64_t len = NAME(min64)(BLOCK, hi - b0);
        for (int64_t j = 0; j < len; j++) {
            const int64_t n = b0 + j;
            A[j] = alpha[Pa > 1 ? (n / inner) % Pa : 0];
            B[j] = beta[Pb > 1 ? (n / inner) % Pb : 0];
            gv[j] = grad_v[n];
            ca[j] = cb[j] = cg[j] = 0;
        }
        for (int64_t t = T - 1; t >= 0; t--) {
            const int64_t base = t * N + b0;
            const R *ht = h_seq + base, *gst = grad_s + base;
            const R *ght = grad_h ? grad_h + base : zero;
            const R *xt = x ? x + base : zero;
            for (int64_t j = 0; j < len; j++) u[j] = ht[j] - v_threshold;
            NAME(surrogate)(kind, u, psi, len, sg_a, sg_c);
            if (acc_b) {  /* V_{t-1}: the reset of H_{t-1}, or V_0 */
                if (t > 0) {
                    const R *hp = ht - N;
                    for (int64_t j = 0; j < len; j++)
                        vp[j] = hp[j] >= v_threshold ? (hard ? v_reset : hp[j] - v_threshold) : hp[j];
                    if (round_mode)
                        for (int64_t j = 0; j < len; j++) vp[j] = NAME(round_state)(vp[j], round_mode);
                } else {
                    for (int64_t j = 0; j < len; j++) vp[j] = v0[b0 + j];
                }
            }
            R *gxt = grad_x + base;
            for (int64_t j = 0; j < len; j++) {
                const R h = ht[j];
                const R s = u[j] >= 0 ? (R)1 : (R)0;
                const R dv_dh = hard ? ((R)1 - s) + keep * (v_reset - h) * psi[j] : (R)1 - keep * v_threshold * psi[j];
                const R gh = gv[j] * dv_dh + gst[j] * psi[j] + ght[j];
                gxt[j] = gh * A[j];
                ca[j] += gh * xt[j];
                cb[j] += gh * vp[j];
                cg[j] += gh;
                gv[j] = gh * B[j];
            }
        }
        for (int64_t j = 0; j < len; j++) {
            grad_v0[b0 + j] = gv[j];
            if (acc_a) acc_a[b0 + j] = ca[j];
            if (acc_b) acc_b[b0 + j] = cb[j];
            if (acc_g) acc_g[b0 + j] = cg[j];
        }
    }
}

/* AR-LIF's sigmoid(X) and sigmoid(cX) of one step's block, for the forward and the backward when
 * torch did not pass them (sig_x NULL: the kernels' sigmoid is torch's, native_math.h): its
 * vectorised one, or with libm torch's scalar one (the neurons where torch runs its scalar loop). */
static inline void NAME(sigmoids_of_x)(const R *xt, R c, R *sx, R *gate, int64_t len, int libm) {
    if (libm)
        for (int64_t j = 0; j < len; j++) {
            sx[j] = NAME(sigmoid_libm)(xt[j]);
            gate[j] = NAME(sigmoid_libm)(c * xt[j]);
        }
    else
        for (int64_t j = 0; j < len; j++) {
            sx[j] = NAME(sigmoid)(xt[j]);
            gate[j] = NAME(sigmoid)(c * xt[j]);
        }
}

/* AR-LIF forward (adalif.functional.arlif). tanh_x, sig_x and gate are torch's tanh(X),
 * sigmoid(X) and sigmoid(cX) ([T, N]; each NULL when its option is off); tanh_a is tanh(a). */
void NAME(arlif_forward)(const R *x, const R *tanh_x, const R *sig_x, const R *gate, const R *v0, const R *m0,
                         R *spikes, R *h_seq, R *m_seq, R *v_out, R *m_out, int64_t T, int64_t N, R tanh_a,
                         R c, R decay, R v_threshold, int adaptive_reset, int adaptive_threshold, int carry, int save,
                         int round_mode, int libm, int64_t lo, int64_t hi, int nthreads) {
    const int64_t nblocks = (hi - lo + BLOCK - 1) / BLOCK;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        const int64_t b0 = lo + blk * BLOCK;
        R v[BLOCK], m[BLOCK], h[BLOCK], th[BLOCK], s[BLOCK], sm[BLOCK], scratch[BLOCK], zero[BLOCK], sxl[BLOCK],
            gtl[BLOCK];
        for (int64_t j = 0; j < BLOCK; j++) zero[j] = 0;
        const int64_t len = NAME(min64)(BLOCK, hi - b0);
        for (int64_t j = 0; j < len; j++) { v[j] = v0[b0 + j]; m[j] = m0[b0 + j]; }
        for (int64_t t = 0; t < T; t++) {
            const int64_t base = t * N + b0;
            const R *xt = x + base;
            const R *tx = adaptive_threshold ? tanh_x + base : zero;
            R *st = spikes + base;
            R *ht = save ? h_seq + base : scratch;
            for (int64_t j = 0; j < len; j++) {
                h[j] = decay * v[j] + xt[j];
                th[j] = adaptive_threshold ? v_threshold + tanh_a * tx[j] : v_threshold;
                s[j] = h[j] - th[j] >= 0 ? (R)1 : (R)0;
                st[j] = s[j];
                ht[j] = h[j];
            }
            if (adaptive_reset) {
                const R *sx = sig_x ? sig_x + base : sxl, *gt = carry ? (gate ? gate + base : gtl) : zero;
                if (!sig_x) NAME(sigmoids_of_x)(xt, c, sxl, gtl, len, libm);
                R *mt = save ? m_seq + base : scratch;
                for (int64_t j = 0; j < len; j++) {
                    const R m_prev = carry ? m[j] : (R)0;
                    const R pos = m_prev > 0 ? m_prev : (R)0, neg = -m_prev > 0 ? -m_prev : (R)0;
                    R mj = gt[j] * pos - ((R)1 - gt[j]) * neg;
                    mj = mj + s[j] * sx[j] - ((R)1 - s[j]) * sx[j];
                    m[j] = mj;
                    mt[j] = mj;
                }
                if (libm)
                    for (int64_t j = 0; j < len; j++) sm[j] = NAME(sigmoid_libm)(m[j]);
                else
                    for (int64_t j = 0; j < len; j++) sm[j] = NAME(sigmoid)(m[j]);
                for (int64_t j = 0; j < len; j++) v[j] = h[j] - s[j] * (th[j] + sm[j]);
            } else {
                for (int64_t j = 0; j < len; j++) v[j] = h[j] - s[j] * th[j];
            }
            if (round_mode)  /* the state (V, M) at the end of the step, as the reference keeps it */
                for (int64_t j = 0; j < len; j++) {
                    v[j] = NAME(round_state)(v[j], round_mode);
                    m[j] = NAME(round_state)(m[j], round_mode);
                }
        }
        for (int64_t j = 0; j < len; j++) { v_out[b0 + j] = v[j]; m_out[b0 + j] = m[j]; }
    }
}

/* AR-LIF backward: grad_x, the gradients of V_0 and M_0, and per-neuron accumulators of the
 * gradients of tanh(a) and c. grad_h and grad_m_seq may be NULL; tanh_x, sig_x, gate as forward. */
void NAME(arlif_backward)(const R *grad_s, const R *grad_h, const R *grad_m_seq, const R *grad_v, const R *grad_m,
                          const R *h_seq, const R *m_seq, const R *x, const R *tanh_x, const R *sig_x,
                          const R *gate, const R *m0, R *grad_x, R *grad_v0, R *grad_m0, R *acc_a, R *acc_c,
                          int64_t T, int64_t N, R tanh_a, R c, R decay, R v_threshold, int kind, R sg_a, R sg_c,
                          int adaptive_reset, int adaptive_threshold, int carry, int libm, int64_t lo, int64_t hi,
                          int nthreads) {
    const int64_t nblocks = (hi - lo + BLOCK - 1) / BLOCK;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        const int64_t b0 = lo + blk * BLOCK;
        R gv[BLOCK], gm[BLOCK], ca[BLOCK], cc[BLOCK], u[BLOCK], psi[BLOCK], th[BLOCK], zero[BLOCK], sxl[BLOCK],
            gtl[BLOCK];
        for (int64_t j = 0; j < BLOCK; j++) zero[j] = 0;
        const int64_t len = NAME(min64)(BLOCK, hi - b0);
        for (int64_t j = 0; j < len; j++) {
            gv[j] = grad_v[b0 + j];
            gm[j] = grad_m[b0 + j];
            ca[j] = cc[j] = 0;
        }
        for (int64_t t = T - 1; t >= 0; t--) {
            const int64_t base = t * N + b0;
            const R *xt = x + base, *ht = h_seq + base, *gst = grad_s + base;
            const R *tx = adaptive_threshold ? tanh_x + base : zero;
            const R *ght = grad_h ? grad_h + base : zero;
            const R *gmt = grad_m_seq ? grad_m_seq + base : zero;
            R *gxt = grad_x + base;
            for (int64_t j = 0; j < len; j++) {
                th[j] = adaptive_threshold ? v_threshold + tanh_a * tx[j] : v_threshold;
                u[j] = ht[j] - th[j];
            }
            NAME(surrogate)(kind, u, psi, len, sg_a, sg_c);
            if (adaptive_reset) {
                const R *mt = m_seq + base, *sx = sig_x ? sig_x + base : sxl;
                const R *mp = t > 0 ? mt - N : m0 + b0;
                const R *gt = carry ? (gate ? gate + base : gtl) : zero;
                if (!sig_x) NAME(sigmoids_of_x)(xt, c, sxl, gtl, len, libm);
                for (int64_t j = 0; j < len; j++) {
                    const R s = u[j] >= 0 ? (R)1 : (R)0;
                    const R sig_m = (R)1 / ((R)1 + NAME(fast_exp)(-mt[j]));
                    const R gm_total = gm[j] - gv[j] * s * sig_m * ((R)1 - sig_m) + gmt[j];
                    const R g_s = gst[j] - gv[j] * (th[j] + sig_m) + gm_total * (R)2 * sx[j];
                    R gx = gm_total * ((R)2 * s - (R)1) * sx[j] * ((R)1 - sx[j]);
                    const R m_prev = carry ? mp[j] : (R)0;
                    const R dgate = gm_total * FABS(m_prev) * gt[j] * ((R)1 - gt[j]);
                    gx += dgate * c;
                    cc[j] += dgate * xt[j];
                    gm[j] = carry ? gm_total * (gt[j] * (m_prev > 0 ? (R)1 : (R)0) + ((R)1 - gt[j]) * (m_prev < 0 ? (R)1 : (R)0))
                                  : (R)0;
                    const R gu = g_s * psi[j];
                    const R gh = gv[j] + gu + ght[j];
                    gx += gh;
                    const R g_theta = -gv[j] * s - gu;
                    gx += adaptive_threshold ? g_theta * tanh_a * ((R)1 - tx[j] * tx[j]) : (R)0;
                    ca[j] += g_theta * tx[j];
                    gxt[j] = gx;
                    gv[j] = gh * decay;
                }
            } else {
                for (int64_t j = 0; j < len; j++) {
                    const R s = u[j] >= 0 ? (R)1 : (R)0;
                    const R gu = (gst[j] - gv[j] * th[j]) * psi[j];
                    const R gh = gv[j] + gu + ght[j];
                    const R g_theta = -gv[j] * s - gu;
                    const R gx = gh + (adaptive_threshold ? g_theta * tanh_a * ((R)1 - tx[j] * tx[j]) : (R)0);
                    ca[j] += g_theta * tx[j];
                    gxt[j] = gx;
                    gv[j] = gh * decay;
                }
            }
        }
        for (int64_t j = 0; j < len; j++) {
            grad_v0[b0 + j] = gv[j];
            grad_m0[b0 + j] = gm[j];
            acc_a[b0 + j] = ca[j];
            acc_c[b0 + j] = cc[j];
        }
    }
}
