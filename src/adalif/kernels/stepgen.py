"""The generic path on the CPU: C generated from a neuron's step function, for any definition.

A definition's step (:mod:`adalif.definitions`) is a handful of elementwise tensor operations. We
run it once on small tensors under a :class:`~torch.utils._python_dispatch.TorchDispatchMode`
that records every ATen operation it reaches: once for the forward, once for the forward and its
``torch.autograd.grad`` (the surrogate's backward included), which gives the backward of one step.
Each recorded operation becomes one C statement (:data:`_C`), and the step loop around them is the
same as the built-in kernels' (``native_template.h``): blocks of 256 neurons on OpenMP threads, the
state in registers, the forward saving the state before each step and the backward recomputing
the step from it. The C is compiled by :func:`.cpu.load_c` (about a second, cached per machine),
so a definition is fast from its first call, with no ``torch.compile``: no graph per T, shape or
rank, and no ``torch._dynamo`` import (2 s). Why hand-written: inductor does this, at 10-40 s per
definition and process.

Exact or refused: only the operations of :data:`_C` are translated, each as torch computes it on
the CPU (no fused multiply-add, scalars rounded to the tensor's type first); a step that reaches
anything else (a view, a reduction, a Python branch on a tensor's value, which reads the value
through ``aten._local_scalar_dense``), a parameter that is not in the input's dtype or that cannot
broadcast against a step, gives the reason, and :mod:`.generic` compiles it with ``torch.compile``
instead. tests/test_generic_path.py holds every definition to the reference loop.
"""

from __future__ import annotations

import ctypes
import math
import threading
from typing import Dict, List, NamedTuple, Optional, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ..functional.loop import Dynamics
from ..functional.records import SequenceOutput
from . import cpu, ops

aten = torch.ops.aten


class Unsupported(Exception):
    """The step reached something the generator does not translate."""


# -- recording -------------------------------------------------------------------------------------
def _c_float(value: float) -> str:
    if math.isnan(value):
        return "NAN"
    if math.isinf(value):
        return "INFINITY" if value > 0 else "-INFINITY"
    return f"((R){float(value).hex()})"


#: ATen operation -> C expression over its operands a, b, c (as C expressions) and its scalar
#: arguments; ``R`` is the compute type. Each is what torch's CPU kernel computes, in its order.
_UNARY = {
    "neg": "(-{a})", "abs": "FABS({a})", "reciprocal": "((R)1 / {a})", "sqrt": "SQRT({a})",
    "exp": "EXP({a})", "log": "LOG({a})", "tanh": "TANH({a})", "sigmoid": "sigmoid_r({a})",
    "relu": "({a} < 0 ? (R)0 : {a})", "floor": "FLOOR({a})", "ceil": "CEIL({a})", "round": "NEARBYINT({a})",
    "sign": "(R)(({a} > 0) - ({a} < 0))", "sgn": "(R)(({a} > 0) - ({a} < 0))", "atan": "ATAN({a})", "sin": "SIN({a})", "cos": "COS({a})",
    "logical_not": "(!{a})",
}
_BINARY = {
    "add": "({a} + {b})", "sub": "({a} - {b})", "mul": "({a} * {b})", "div": "({a} / {b})",
    "rsub": "({b} - {a})", "maximum": "({a} != {a} || {a} > {b} ? {a} : {b})",
    "minimum": "({a} != {a} || {a} < {b} ? {a} : {b})",
    "ge": "({a} >= {b})", "gt": "({a} > {b})", "le": "({a} <= {b})", "lt": "({a} < {b})", "eq": "({a} == {b})",
    "ne": "({a} != {b})", "logical_and": "({a} && {b})", "logical_or": "({a} || {b})",
    "bitwise_and": "({a} & {b})", "bitwise_or": "({a} | {b})",
    "sigmoid_backward": "({a} * ((R)1 - {b}) * {b})", "tanh_backward": "({a} * ((R)1 - {b} * {b}))",
    "clamp_min": "({a} < {b} ? {b} : {a})", "clamp_max": "({a} > {b} ? {b} : {a})",
}
#: What the C evaluates with libm, one element at a time (sigmoid: SLEEF's, vectorised, where
#: cpu.SLEEF_SIGMOID).
_SCALAR_LIBM = {"exp", "log", "tanh", "atan", "sin", "cos", "sigmoid"}
_COMPARISONS = {"ge", "gt", "le", "lt", "eq", "ne", "logical_and", "logical_or", "logical_not"}
_RANDOM = {"rand", "randn", "rand_like", "randn_like", "randint", "randint_like", "bernoulli", "normal", "uniform",
           "random", "exponential", "geometric", "cauchy", "log_normal", "multinomial", "dropout", "native_dropout",
           "randperm"}
_IDENTITY = {"detach", "alias", "clone", "lift_fresh", "lift_fresh_copy", "contiguous"}


class _Recorder(TorchDispatchMode):
    """Records the ATen operations run under it as C statements over named inputs."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # Else torch wraps __torch_dispatch__ in dynamo's disable, whose first call imports
        # torch._dynamo (2-4 s). Nothing here runs under torch.compile (generic.run skips us there).
        return False

    def __init__(self, inputs: List[Tuple[torch.Tensor, str]], dtype: torch.dtype, n: int) -> None:
        super().__init__()
        self.names: Dict[int, str] = {id(t): name for t, name in inputs}
        self.types: Dict[str, str] = {name: "R" for _, name in inputs}
        self.alive = [t for t, _ in inputs]  # ids stay unique while the tensors live
        self.lines: List[str] = []
        self.constants: Dict[int, torch.Tensor] = {}
        self.dtype, self.n = dtype, n
        self.error: Optional[str] = None
        # The values that change with the input or the state (not the parameters alone).
        self.varying = {name for _, name in inputs if not name.startswith("in_p")}

    def name_of(self, t: torch.Tensor) -> str:
        return self.names[id(t)]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.error is None:
            try:
                self._record(func, args, kwargs, out)
            except Unsupported as err:
                self.error = str(err)
        return out

    def _operand(self, value) -> Tuple[str, str]:
        """A C expression and its type ("R" or "int") for an argument."""
        if isinstance(value, torch.Tensor):
            if id(value) in self.names:
                name = self.names[id(value)]
                return name, self.types[name]
            if id(value) in self.constants:  # a constant the step made (torch.where's scalar, say)
                value = value.item()
            else:  # captured from outside: its value could change between calls
                raise Unsupported(f"a tensor of shape {tuple(value.shape)} from outside the step's arguments")
        if isinstance(value, bool):
            return str(int(value)), "int"
        if isinstance(value, (int, float)):
            return _c_float(value), "R"
        raise Unsupported(f"an argument {value!r}")

    def _record(self, func, args, kwargs, out) -> None:
        op = func.overloadpacket.__name__
        if op.endswith("_") and not op.startswith("_"):  # in place: the same value, bound to the same tensor
            op = op[:-1]
        if op in ("_local_scalar_dense", "is_nonzero", "item"):
            raise Unsupported("a Python branch on a tensor's value")
        if not isinstance(out, torch.Tensor):
            raise Unsupported(f"aten.{op}, which does not return one tensor")
        if op in _RANDOM:
            raise Unsupported(f"a random draw (aten.{op})")
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        if out.dim() == 0 and all(id(a) in self.constants for a in tensors):
            self.constants[id(out)] = out  # made from constants only: an operand later, by its value
            self.alive.append(out)
            return
        if tuple(out.shape) != (self.n,) or out.dtype not in (self.dtype, torch.bool):
            raise Unsupported(f"aten.{op} giving a {out.dtype} tensor of shape {tuple(out.shape)} (a reduction, a "
                              f"view or another dtype: only elementwise operations in the input's dtype are "
                              f"translated)")
        ctype = "int" if out.dtype == torch.bool else "R"
        operands = [self._operand(a) for a in args if isinstance(a, (torch.Tensor, int, float, bool))]
        cast = lambda e, t: f"((R){e})" if t == "int" and ctype == "R" else e  # noqa: E731
        alpha = kwargs.get("alpha", 1)
        if alpha != 1 or kwargs.get("rounding_mode") is not None:
            raise Unsupported(f"aten.{op} with {kwargs}")
        if op in _IDENTITY or (op == "_to_copy" and (kwargs.get("dtype") in (None, out.dtype)) and
                               args[0].dtype == out.dtype):
            self._alias(out, operands[0][0], ctype)
            return
        if op == "_to_copy":
            expr = f"((R){operands[0][0]})" if ctype == "R" else f"({operands[0][0]} != 0)"
        elif op in ("zeros_like", "ones_like", "full_like", "scalar_tensor"):
            value = {"zeros_like": 0.0, "ones_like": 1.0}.get(op, args[1] if len(args) > 1 else 0.0)
            expr = _c_float(float(value)) if ctype == "R" else str(int(bool(value)))
        elif op == "where":
            (c, _), (a, ta), (b, tb) = operands
            expr = f"({c} ? {cast(a, ta)} : {cast(b, tb)})"
        elif op == "clamp":
            lo, hi = args[1] if len(args) > 1 else kwargs.get("min"), args[2] if len(args) > 2 else kwargs.get("max")
            expr = operands[0][0]
            if lo is not None:
                expr = f"({expr} < {_c_float(lo)} ? {_c_float(lo)} : {expr})"
            if hi is not None:
                expr = f"({expr} > {_c_float(hi)} ? {_c_float(hi)} : {expr})"
        elif op == "pow" and len(operands) == 2 and not isinstance(args[1], torch.Tensor):
            exponent = args[1]
            a = operands[0][0]
            expr = {2: f"({a} * {a})", 3: f"({a} * {a} * {a})", 0.5: f"SQRT({a})", 1: a}.get(exponent)
            if expr is None:
                raise Unsupported(f"aten.pow with exponent {exponent}")
        elif op == "threshold_backward":  # relu's: grad where self > threshold, else 0
            (g, tg), (x, _) = operands[:2]
            expr = f"({x} <= {_c_float(args[2])} ? (R)0 : {cast(g, tg)})"
        elif op == "sigmoid" and cpu.SLEEF_SIGMOID and operands[0][0] not in self.varying:
            # torch's sigmoid of a [C] or 0-d parameter rounds by the parameter's own size, which the
            # kernels do not see (cpu.scalar_ranges): a parameter's constrain does it right.
            raise Unsupported("torch.sigmoid of parameters alone inside the step (give the parameter "
                              "constrain=torch.sigmoid instead)")
        elif op in _SCALAR_LIBM and self.dtype == torch.float32 and not (op == "sigmoid" and cpu.SLEEF_SIGMOID):
            # libm's functions are called one element at a time and stop gcc vectorising the loop:
            # measured 3x slower than the reference loop (AR-LIF's step), so torch.compile it is.
            raise Unsupported(f"aten.{op}, which the C would evaluate one element at a time")
        elif op in _UNARY and len(operands) == 1:
            a, ta = operands[0]
            expr = _UNARY[op].format(a=a if op in _COMPARISONS or op == "logical_not" else cast(a, ta))
        elif op in _BINARY and len(operands) == 2:
            (a, ta), (b, tb) = operands
            if op in _COMPARISONS or op.startswith("bitwise"):
                if ta != tb:  # compare in the float type, as torch promotes
                    a, b = (f"((R){a})" if ta == "int" else a), (f"((R){b})" if tb == "int" else b)
                expr = _BINARY[op].format(a=a, b=b)
            else:
                expr = _BINARY[op].format(a=cast(a, ta), b=cast(b, tb))
        else:
            raise Unsupported(f"aten.{op}")
        name = f"v{len(self.lines)}"
        self.lines.append(f"const {ctype} {name} = {expr};")
        if any(o in self.varying for o, _ in operands):
            self.varying.add(name)
        self.types[name] = ctype
        self.names[id(out)] = name
        self.alive.append(out)

    def _alias(self, out: torch.Tensor, name: str, ctype: str) -> None:
        self.names[id(out)] = name
        self.types.setdefault(name, ctype)
        self.alive.append(out)


# -- the sequence kernels ----------------------------------------------------------------------------
class Plan(NamedTuple):
    """One translated step: the C library and how to call it."""

    lib: ctypes.CDLL
    fields: Tuple[str, ...]       # the record's tensor fields, in argument order
    per_step: Tuple[bool, ...]    # whether each is sliced per step ([T, N]) or one value ([N])
    n_state: int
    has_h: bool
    sigmoid: bool                 # whether the step calls torch.sigmoid (cpu.scalar_ranges)


_N = 16  # the neurons of the recording


def _record(dynamics: Dynamics, rec, state, fields, dtype, n: int):
    """The forward and the joint (forward, then the gradient of one step) programs of ``dynamics``,
    recorded on ``n`` neurons."""
    n_state = len(state)
    make = lambda: torch.randn(n, dtype=dtype)  # noqa: E731
    x, st, vals = make(), [make() for _ in range(n_state)], [make() for _ in fields]

    def step(x, st, vals):
        return dynamics.step(x, type(state)(*st), rec._replace(**dict(zip(fields, vals))))

    names = [(x, "in_x"), *((t, f"in_s{i}") for i, t in enumerate(st)), *((t, f"in_p{i}") for i, t in enumerate(vals))]
    with torch.no_grad(), _Recorder(names, dtype, n) as forward:
        out = step(x, st, vals)
    if forward.error is not None:
        raise Unsupported(forward.error)
    if not isinstance(out.spikes, torch.Tensor) or len(out.state) != n_state:
        raise Unsupported("a step that does not return spikes and a state like its own")
    has_h = isinstance(out.h, torch.Tensor)
    results = [("out_s", out.spikes), *((f"out_n{i}", t) for i, t in enumerate(out.state))]
    results += [("out_h", out.h)] if has_h else []
    fwd = forward.lines + [f"const R {name} = {_operand_of(forward, t)};" for name, t in results]

    leaves = [t.detach().requires_grad_() for t in (x, *st, *vals)]
    grads_in = [make() for _ in range(1 + n_state + has_h)]
    names = [(t, n) for t, n in zip(leaves, ["in_x", *(f"in_s{i}" for i in range(n_state)),
                                              *(f"in_p{i}" for i in range(len(fields)))])]
    names += [(g, n) for g, n in zip(grads_in, ["in_gs", *(f"in_gn{i}" for i in range(n_state)), "in_gh"])]
    with torch.enable_grad(), _Recorder(names, dtype, n) as joint:
        out = step(leaves[0], leaves[1:1 + n_state], leaves[1 + n_state:])
        outputs = [out.spikes, *out.state] + ([out.h] if has_h else [])
        used = [(o, g) for o, g in zip(outputs, grads_in) if o.requires_grad]
        grads = torch.autograd.grad([o for o, _ in used], leaves, [g for _, g in used], allow_unused=True)
    if joint.error is not None:
        raise Unsupported(joint.error)
    back = joint.lines + [f"const R out_g{i} = {_operand_of(joint, g) if g is not None else '(R)0'};"
                          for i, g in enumerate(grads)]
    return fwd, back, has_h


def _operand_of(recorder: _Recorder, t: torch.Tensor) -> str:
    name, ctype = recorder._operand(t)
    return f"((R){name})" if ctype == "int" else name


def _source(fwd: List[str], back: List[str], n_state: int, per_step: Tuple[bool, ...], has_h: bool) -> str:
    """The C of one dtype's forward and backward kernels around the recorded step."""
    k = len(per_step)
    S, P = range(n_state), range(k)
    # restrict: no two arguments overlap, which lets gcc vectorise the loops over the neurons
    ptr = lambda names, const="const ": ", ".join(f"{const}R *restrict {n}" for n in names)  # noqa: E731
    loads = ["const R in_x = x[base + j];", *(f"const R in_s{i} = s{i}[j];" for i in S),
             *(f"const R in_p{i} = p{i}[{'base' if per_step[i] else 'b0'} + j];" for i in P)]
    fwd_args = ", ".join(filter(None, [ptr(["x"]), ptr(f"state{i}" for i in S), ptr(f"p{i}" for i in P),
                                       ptr(["spikes", "h_seq", "v_seq"], ""), ptr((f"saved{i}" for i in S), ""),
                                       ptr((f"state_out{i}" for i in S), "")]))
    bwd_args = ", ".join(filter(None, [ptr(["x"]), ptr(f"saved{i}" for i in S), ptr(f"p{i}" for i in P),
                                       ptr(["g_spikes", "g_h", "g_v"]), ptr(f"g_state{i}" for i in S),
                                       ptr(["g_x"], ""), ptr((f"g_state0_{i}" for i in S), ""),
                                       ptr((f"g_p{i}" for i in P), "")]))
    block_arrays = " ".join(f"R s{i}[BLOCK];" for i in S)
    names = lambda args: ", ".join(a.split()[-1] for a in args.split(", "))  # noqa: E731
    fwd_names, bwd_names = names(fwd_args), names(bwd_args)
    return _with_libm_blocks(f"""#include <math.h>
#include <stdint.h>
#include <string.h>
#define BLOCK 256
#define R {{R}}
#define EXP {{EXP}}
#define LOG {{LOG}}
#define TANH {{TANH}}
#define SQRT {{SQRT}}
#define FABS {{FABS}}
#define FLOOR {{FLOOR}}
#define CEIL {{CEIL}}
#define NEARBYINT {{NEARBYINT}}
#define ATAN {{ATAN}}
#define SIN {{SIN}}
#define COS {{COS}}
#define FMA {{FMA}}
#define NAME(x) x##_r
#define FAST_EXP_OK {{FAST_EXP_OK}}
{{MATH_HEADER}}

/* One block of neurons, a function of its own: gcc vectorises its loops (inside the OpenMP region
 * below, the outlined body loses the pointers' restrict and is not vectorised). */
static void forward_block({fwd_args}, int64_t T, int64_t N, int save, int traces, int64_t b0, int64_t len) {{
    {{
        {block_arrays} R scratch_h[BLOCK], scratch_v[BLOCK]; {' '.join(f'R scratch_s{i}[BLOCK];' for i in S)}
        for (int64_t j = 0; j < len; j++) {{ {' '.join(f's{i}[j] = state{i}[b0 + j];' for i in S)} }}
        for (int64_t t = 0; t < T; t++) {{
            const int64_t base = t * N + b0;
            R *restrict st = spikes + base;
            R *restrict ht = traces && {int(has_h)} ? h_seq + base : scratch_h;
            R *restrict vt = traces ? v_seq + base : scratch_v;
            {' '.join(f'R *restrict sv{i} = save ? saved{i} + base : scratch_s{i};' for i in S)}
            for (int64_t j = 0; j < len; j++) {{
                {' '.join(loads)}
                {' '.join(fwd)}
                {' '.join(f'sv{i}[j] = in_s{i};' for i in S)}
                st[j] = out_s;
                {'ht[j] = out_h;' if has_h else ''}
                {' '.join(f's{i}[j] = out_n{i};' for i in S)}
                vt[j] = out_n0;
            }}
        }}
        for (int64_t j = 0; j < len; j++) {{ {' '.join(f'state_out{i}[b0 + j] = s{i}[j];' for i in S)} }}
    }}
}}

void seq_forward({fwd_args}, int64_t T, int64_t N, int save, int traces, int libm, int64_t lo, int64_t hi,
                 int nthreads) {{
    const int64_t nblocks = (hi - lo + BLOCK - 1) / BLOCK;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t blk = 0; blk < nblocks; blk++) {{
        const int64_t b0 = lo + blk * BLOCK;
        (libm ? forward_block_libm : forward_block)({fwd_names}, T, N, save, traces, b0,
                                                    hi - b0 < BLOCK ? hi - b0 : BLOCK);
    }}
}}

static void backward_block({bwd_args}, int64_t T, int64_t N, int64_t b0, int64_t len) {{
    {{
        R zeros[BLOCK];
        for (int64_t j = 0; j < BLOCK; j++) zeros[j] = 0;
        {' '.join(f'R gs{i}[BLOCK];' for i in S)} {' '.join(f'R acc{i}[BLOCK];' for i in P if not per_step[i])}
        for (int64_t j = 0; j < len; j++) {{
            {' '.join(f'gs{i}[j] = g_state{i}[b0 + j];' for i in S)}
            {' '.join(f'acc{i}[j] = 0;' for i in P if not per_step[i])}
        }}
        for (int64_t t = T - 1; t >= 0; t--) {{
            const int64_t base = t * N + b0;
            {' '.join(f'const R *restrict s{i} = saved{i} + base;' for i in S)}
            const R *restrict ghp = g_h ? g_h + base : zeros;
            const R *restrict gvp = g_v ? g_v + base : zeros;
            for (int64_t j = 0; j < len; j++) {{
                {' '.join(loads)}
                const R in_gs = g_spikes[base + j];
                const R in_gh = ghp[j];
                {' '.join(f'const R in_gn{i} = gs{i}[j]{" + gvp[j]" if i == 0 else ""};' for i in S)}
                {' '.join(back)}
                g_x[base + j] = out_g0;
                {' '.join(f'gs{i}[j] = out_g{1 + i};' for i in S)}
                {' '.join(f'g_p{i}[base + j] = out_g{1 + n_state + i};' if per_step[i] else
                          f'acc{i}[j] += out_g{1 + n_state + i};' for i in P)}
            }}
        }}
        for (int64_t j = 0; j < len; j++) {{
            {' '.join(f'g_state0_{i}[b0 + j] = gs{i}[j];' for i in S)}
            {' '.join(f'g_p{i}[b0 + j] = acc{i}[j];' for i in P if not per_step[i])}
        }}
    }}
}}

void seq_backward({bwd_args}, int64_t T, int64_t N, int libm, int64_t lo, int64_t hi, int nthreads) {{
    const int64_t nblocks = (hi - lo + BLOCK - 1) / BLOCK;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t blk = 0; blk < nblocks; blk++) {{
        const int64_t b0 = lo + blk * BLOCK;
        (libm ? backward_block_libm : backward_block)({bwd_names}, T, N, b0, hi - b0 < BLOCK ? hi - b0 : BLOCK);
    }}
}}
""")


def _with_libm_blocks(source: str) -> str:
    """``source`` with a second forward and backward block whose sigmoid is libm's, torch's scalar
    one, for the neurons where torch runs its scalar loop (cpu.scalar_ranges); the same blocks by
    another name when the step has no sigmoid."""
    if "sigmoid_r(" not in source:
        return source.replace("#define BLOCK 256", "#define BLOCK 256\n#define forward_block_libm forward_block\n"
                              "#define backward_block_libm backward_block", 1)
    for block, after in (("forward_block", "void seq_forward("), ("backward_block", "void seq_backward(")):
        start = source.index(f"static void {block}(")
        end = source.index(after)
        copy = source[start:end].replace(f"static void {block}(", f"static void {block}_libm(", 1)
        source = source[:end] + copy.replace("sigmoid_r(", "sigmoid_libm_r(") + source[end:]
    return source


_MATH = {torch.float32: dict(R="float", EXP="expf", LOG="logf", TANH="tanhf", SQRT="sqrtf", FABS="fabsf",
                             FLOOR="floorf", CEIL="ceilf", NEARBYINT="nearbyintf", ATAN="atanf", SIN="sinf",
                             COS="cosf", FMA="fmaf", FAST_EXP_OK="1"),
         torch.float64: dict(R="double", EXP="exp", LOG="log", TANH="tanh", SQRT="sqrt", FABS="fabs",
                             FLOOR="floor", CEIL="ceil", NEARBYINT="nearbyint", ATAN="atan", SIN="sin", COS="cos",
                             FMA="fma", FAST_EXP_OK="0")}
_PLANS: Dict[tuple, object] = {}
_LOCK = threading.Lock()


def _per_step_fields(dynamics: Dynamics) -> set:
    """The parameters a definition slices per step (``per="step"``); none without ``at``."""
    if dynamics.at is None:
        return set()
    from ..definitions import base

    d = base._REGISTRY.get(dynamics.family)
    if d is None or d.step is not dynamics.step:
        return None  # an unknown record: which fields change per step is not known
    return {p.name for p in d.parameters if p.per == "step"}


def plan(dynamics: Dynamics, params: NamedTuple, state: NamedTuple, dtype: torch.dtype) -> Plan:
    """The translated step of ``dynamics`` for a record like ``params`` (raises :class:`Unsupported`)."""
    if dtype not in _MATH:
        raise Unsupported(f"dtype {dtype} (the generated kernels compute in float32 or float64)")
    per_step_names = _per_step_fields(dynamics)
    if per_step_names is None:
        raise Unsupported(f"a Dynamics record with a per-step parameter function that is not a registered "
                          f"definition's ({dynamics.family})")
    fields = tuple(f for f in params._fields if isinstance(getattr(params, f), torch.Tensor))
    constants = tuple((f, getattr(params, f)) for f in params._fields if f not in fields)
    try:
        key = (dynamics.step, dynamics.at, dtype, type(params), fields, constants, type(state), len(state))
        hash(key)
    except TypeError as err:
        raise Unsupported(f"an option that is not hashable ({err})") from err
    with _LOCK:
        if key not in _PLANS:
            try:
                # the step's record as step 0 sees it (per-channel values viewed, per-step sliced)
                x0 = torch.zeros(2, _N, dtype=dtype)
                rec = params if dynamics.at is None else dynamics.at(params, 0, x0[0])
                with torch.inference_mode(False):
                    try:
                        fwd, back, has_h = _record(dynamics, rec, state, fields, dtype, 16)
                        again = _record(dynamics, rec, state, fields, dtype, 24)
                    except Unsupported:
                        raise
                    except Exception as err:  # the step needs more than one-dimensional elementwise code
                        raise Unsupported(f"a step that fails on one-dimensional inputs ({type(err).__name__}: "
                                          f"{err})") from err
                if again != (fwd, back, has_h):  # a size or a drawn value baked into the recording
                    raise Unsupported("a step whose operations depend on the input's size or on random draws")
                per_step = tuple(f in per_step_names for f in fields)
                source = _source(fwd, back, len(state), per_step, has_h)
                for macro, value in _MATH[dtype].items():
                    source = source.replace("{" + macro + "}", value)
                # torch's sigmoid, as native_math.h writes it (inlined: the library's name hashes it)
                source = source.replace("{MATH_HEADER}", cpu.SOURCES[2].read_text())
                lib = cpu.load_c(f"adalif_step_{dynamics.family}", source)
                for fn in (lib.seq_forward, lib.seq_backward):
                    fn.restype = None
                _PLANS[key] = Plan(lib, fields, per_step, len(state), has_h, "sigmoid_r(" in source)
            except Unsupported as err:
                _PLANS[key] = err
            except (RuntimeError, OSError) as err:  # no compiler, a failed build
                _PLANS[key] = Unsupported(str(err))
        found = _PLANS[key]
    if isinstance(found, Unsupported):
        raise found
    return found


# -- running ----------------------------------------------------------------------------------------
def _prepare(p: Plan, dynamics: Dynamics, params: NamedTuple, x: torch.Tensor) -> List[torch.Tensor]:
    """Each tensor field as the kernels read it: the value each step sees, broadcast against one
    step ``[B, ...]`` and flattened (``[N]``, or ``[T, N]`` for a per-step field). Differentiable, so
    that autograd carries the kernels' per-neuron gradients back to the parameters' own shapes."""
    T, step = x.shape[0], x.shape[1:]
    records = [params if dynamics.at is None else dynamics.at(params, t, x[t]) for t in (range(T) if any(p.per_step)
                                                                                     else range(1))]
    out = []
    for name, per_step in zip(p.fields, p.per_step):
        if per_step:
            out.append(torch.stack([getattr(r, name).expand(step) for r in records]).reshape(T, -1))
        else:
            out.append(getattr(records[0], name).expand(step).reshape(-1).contiguous())
    return out


def _forward(p: Plan, x, starts, prepared, traces: bool, saved: Optional[List[torch.Tensor]]):
    """The generated forward over ``x`` from ``starts``: spikes, end states, and the traces (empty
    when not ``traces``); with ``saved``, the state before each step is written there."""
    T, N = x.shape[0], x[0].numel()
    spikes = torch.empty_like(x)
    h_seq = torch.empty_like(x) if traces and p.has_h else x.new_empty(0)
    v_seq = torch.empty_like(x) if traces else x.new_empty(0)
    ends = [torch.empty_like(s) for s in starts]
    scratch = x.new_empty(1)  # where an output that is not wanted goes (never read)
    out = lambda t: _ptr(t) or _ptr(scratch)  # noqa: E731
    args = (_ptr(x), *map(_ptr, starts), *map(_ptr, prepared), _ptr(spikes), out(h_seq), out(v_seq),
            *(out(t) for t in (saved or [None] * len(starts))), *map(_ptr, ends), ctypes.c_int64(T),
            ctypes.c_int64(N), ctypes.c_int(saved is not None), ctypes.c_int(traces))
    for libm, (lo, hi) in _spans(p, x.dtype, N):
        p.lib.seq_forward(*args, ctypes.c_int(libm), ctypes.c_int64(lo), ctypes.c_int64(hi),
                          ctypes.c_int(cpu.threads_for(hi - lo)))
    return spikes, ends, h_seq, v_seq


def _spans(p: Plan, dtype: torch.dtype, n: int):
    """(libm, (lo, hi)) for each kernel call: cpu.sigmoid_spans for a step with a sigmoid."""
    return cpu.sigmoid_spans(n, dtype) if p.sigmoid else [(0, (0, n))]


def _ptr(t: Optional[torch.Tensor]):
    return None if t is None or t.numel() == 0 else ctypes.c_void_p(t.data_ptr())


class _Sequence(torch.autograd.Function):
    """The translated step over a whole sequence: forward and backward are the generated kernels;
    the parameters' gradients reach their own shapes through :func:`_prepare`, under autograd."""

    @staticmethod
    def forward(ctx, meta, x, *tensors):
        p, dynamics, params, traces = meta
        states, originals = tensors[:p.n_state], tensors[p.n_state:]
        with torch.no_grad():
            prepared = _prepare(p, dynamics, params._replace(**dict(zip(p.fields, originals))), x)
        xc = x.detach().contiguous()
        starts = [s.detach().contiguous() for s in states]
        spikes, ends, h_seq, v_seq = _forward(p, xc, starts, prepared, traces, saved=None)
        ctx.meta = meta
        ctx.set_materialize_grads(False)
        # Only the input and the start: the backward runs the forward again to get each step's state
        # (kept only while this layer's backward runs), so that what waits for backward is small.
        ctx.save_for_backward(x, *states, *originals)
        return (spikes, *ends, h_seq, v_seq)

    @staticmethod
    def backward(ctx, g_spikes, *grads):
        p, dynamics, params, traces = ctx.meta
        ops.refuse_double_backward(f"adalif {dynamics.family}")
        x, *rest = ctx.saved_tensors
        starts, originals = rest[:p.n_state], rest[p.n_state:]
        g_ends, g_h, g_v = grads[:p.n_state], grads[p.n_state], grads[p.n_state + 1]
        T, N = x.shape[0], x[0].numel()
        contiguous = lambda g, like: (g if g is not None else torch.zeros_like(like)).contiguous()  # noqa: E731
        with torch.enable_grad():
            leaves = [o.detach().requires_grad_(o.requires_grad) for o in originals]
            prepared = _prepare(p, dynamics, params._replace(**dict(zip(p.fields, leaves))), x.detach())
        saved = [torch.empty(x.shape, dtype=x.dtype) for _ in starts]  # the state before each step
        starts = [s.detach().contiguous() for s in starts]
        _forward(p, x.detach().contiguous(), starts, [t.detach() for t in prepared], False, saved)
        g_x = torch.empty_like(x, memory_format=torch.contiguous_format)
        g_starts = [torch.empty_like(s) for s in starts]
        g_prepared = [torch.empty_like(t) for t in prepared]
        # Every tensor handed to C by address is held by a name here until the call returns.
        inputs = [x.detach().contiguous(), *saved, *(t.detach() for t in prepared), contiguous(g_spikes, x),
                  g_h.contiguous() if g_h is not None and g_h.numel() else None,
                  g_v.contiguous() if g_v is not None and g_v.numel() else None,
                  *(contiguous(g, s) for g, s in zip(g_ends, starts))]
        for libm, (lo, hi) in _spans(p, x.dtype, N):
            p.lib.seq_backward(*map(_ptr, inputs), _ptr(g_x), *map(_ptr, g_starts), *map(_ptr, g_prepared),
                               ctypes.c_int64(T), ctypes.c_int64(N), ctypes.c_int(libm), ctypes.c_int64(lo),
                               ctypes.c_int64(hi), ctypes.c_int(cpu.threads_for(hi - lo)))
        wanted = [(t, g, leaf) for t, g, leaf in zip(prepared, g_prepared, leaves) if leaf.requires_grad]
        found = iter(torch.autograd.grad([t for t, _, _ in wanted], [leaf for _, _, leaf in wanted],
                                         [g for _, g, _ in wanted], allow_unused=True) if wanted else ())
        g_params = [next(found) if leaf.requires_grad else None for leaf in leaves]
        return (None, g_x, *g_starts, *g_params)


def run(dynamics: Dynamics, x: torch.Tensor, state: NamedTuple, params: NamedTuple,
        return_traces: bool = False) -> SequenceOutput:
    """A runner for :func:`adalif.functional.run`: the generated kernels (raises :class:`Unsupported`)."""
    if x.device.type != "cpu":
        raise Unsupported(f"{x.device.type} tensors (the generated kernels run on the CPU)")
    for name, value in zip(state._fields, state):
        if value.dtype != x.dtype:  # torch would promote; the kernels compute in one type
            raise Unsupported(f"state.{name} of dtype {value.dtype} with a {x.dtype} input")
    p = plan(dynamics, params, state, x.dtype)
    if return_traces and not p.has_h:
        raise Unsupported("traces of a step that returns no potential h")
    _check_layout(p, x, state)
    for name in p.fields:
        value = getattr(params, name)
        if value.dtype != x.dtype or value.device != x.device:
            raise Unsupported(f"parameter {name} of dtype {value.dtype} on {value.device} with a {x.dtype} input")
    try:
        with torch.no_grad():
            _prepare(p, dynamics, params, x[:1] if not any(p.per_step) else x)
    except RuntimeError as err:  # a value that does not broadcast against a step
        raise Unsupported(f"a parameter that does not broadcast against a step: {err}") from err
    meta = (p, dynamics, params, return_traces)
    spikes, *rest = _Sequence.apply(meta, x, *state, *(getattr(params, f) for f in p.fields))
    ends, h_seq, v_seq = rest[:p.n_state], rest[p.n_state], rest[p.n_state + 1]
    final = type(state)(*ends)
    if not return_traces:
        return SequenceOutput(spikes, final)
    return SequenceOutput(spikes, final, h_seq if p.has_h else None, v_seq)


def _check_layout(p: Plan, x: torch.Tensor, state: NamedTuple) -> None:
    reason = cpu.layout_reason(x, state) if p.sigmoid else None
    if reason is not None:
        raise Unsupported(f"a step with torch.sigmoid where {reason}")


def translates(dynamics: Dynamics, x: torch.Tensor, params: NamedTuple, state: Optional[NamedTuple] = None) -> bool:
    """Whether :func:`run` takes ``dynamics`` over ``x`` from ``state`` (None: the initial state),
    translating its step the first time."""
    if x.device.type != "cpu":
        return False
    try:
        if state is None:
            with torch.inference_mode(False):
                state = dynamics.initial_state(x[0], params)
        p = plan(dynamics, params, state, x.dtype)
        _check_layout(p, x, state)
        return all(getattr(params, f).dtype == x.dtype for f in p.fields)
    except Unsupported:
        return False
