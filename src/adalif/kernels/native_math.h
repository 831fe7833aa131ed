/* The sigmoids of one dtype (native_template.h and the C that stepgen.py generates include it with
 * R, NAME, EXP, FMA, NEARBYINT, FAST_EXP_OK and ADALIF_SLEEF defined). */
/* torch's scalar sigmoid (libm's exp), which its vectorised kernel runs on the elements left over
 * after the last pair of vectors (cpu.scalar_ranges): the kernels use it there. */
static inline R NAME(sigmoid_libm)(R z) { return (R)1 / ((R)1 + EXP(-z)); }

#if FAST_EXP_OK && ADALIF_SLEEF
/* SLEEF's expf (u10), the function torch's vectorised float32 sigmoid evaluates (with fused
 * multiply-adds, as its AVX2/AVX-512 build): so NAME(sigmoid) is torch's vectorised sigmoid bit for
 * bit (tests check it and NAME(sigmoid_libm) at every position), and vectorises. Written out
 * because SLEEF is not a system library. */
static inline float NAME(pow2i)(int32_t q) {
    const int32_t b = (q + 0x7f) << 23;
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static inline R NAME(sleef_exp)(R d) {
    const int32_t q = (int32_t)NEARBYINT(d * 1.442695040888963407359924681001892137426645954152985934135449406931f);
    R s = FMA((R)q, -0.693145751953125f, d);
    s = FMA((R)q, -1.428606765330187045e-06f, s);
    R u = 0.000198527617612853646278381f;
    u = FMA(u, s, 0.00139304355252534151077271f);
    u = FMA(u, s, 0.00833336077630519866943359f);
    u = FMA(u, s, 0.0416664853692054748535156f);
    u = FMA(u, s, 0.166666671633720397949219f);
    u = FMA(u, s, 0.5f);
    u = (R)1 + FMA(s * s, u, s);
    u = u * NAME(pow2i)(q >> 1) * NAME(pow2i)(q - (q >> 1));
    u = d < -104.0f ? (R)0 : u;
    u = d > 100.0f ? (R)INFINITY : u;
    return d != d ? d : u;
}

static inline R NAME(sigmoid)(R z) { return (R)1 / ((R)1 + NAME(sleef_exp)(-z)); }
#else
static inline R NAME(sigmoid)(R z) { return NAME(sigmoid_libm)(z); }
#endif
