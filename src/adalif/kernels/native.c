/* adalif's CPU kernels (adalif.kernels.cpu): compiled by the machine's C compiler on first use and
 * loaded with ctypes. Plain C, no torch header, so the build takes a second or two and needs only a
 * C compiler. native_template.h holds the kernels; it is included once per dtype. */
#include <stdint.h>
#include <math.h>
#include <string.h>

#define BLOCK 256

/* Each dtype alone when built as two objects at once (cpu.py: -DADALIF_ONLY_F32 / _F64). */
#ifndef ADALIF_ONLY_F64
#define R float
#define NAME(x) x##_f32
#define EXP expf
#define FABS fabsf
#define FLOOR floorf
#define NEARBYINT nearbyintf
#define FMA fmaf
#define FAST_EXP_OK 1
#include "native_template.h"
#undef R
#undef NAME
#undef EXP
#undef FABS
#undef FLOOR
#undef NEARBYINT
#undef FMA
#undef FAST_EXP_OK
#endif

#ifndef ADALIF_ONLY_F32
#define R double
#define NAME(x) x##_f64
#define EXP exp
#define FABS fabs
#define FLOOR floor
#define NEARBYINT nearbyint
#define FMA fma
#define FAST_EXP_OK 0 /* float64 keeps libm's exp in the backward too (the tests hold it to 1e-12) */
#include "native_template.h"
#endif
