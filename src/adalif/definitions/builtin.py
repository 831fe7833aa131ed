"""The definitions of the four neurons whose modules and kernels are hand-written: LIF, PLIF,
DA-LIF and AR-LIF (:mod:`adalif.neurons`, :mod:`adalif.kernels`). Their records point at those
modules and say what the rest of adalif needs: what the parameter tracker logs, the operations per
step, and the NIR mapping (:math:`H_t = \\beta V_{t-1} + \\alpha X_t`, hard reset to 0) or why
there is none."""

from __future__ import annotations

import torch

from .. import functional as F
from ..neurons import ARLIF, DALIF, LIF, PLIF
from .base import NeuronDefinition, register


def _lif_decays(m, name):
    """(alpha, beta) of LIF and PLIF as NIR's LIF, or why not."""
    if m.v_reset is None:
        raise ValueError("soft reset (v_reset=None) has no NIR node; NIR's LIF resets to v_reset")
    if m.v_reset != 0.0:
        raise ValueError(f"reset to {m.v_reset}; the export maps resets to 0 only")
    k = torch.as_tensor(m.decay()).detach()
    return (k if m.decay_input else torch.ones_like(k)), 1.0 - k


def _dalif_decays(m, name):
    if m.reset_mode != "hard":
        raise ValueError("soft reset (subtracting V_th) has no NIR node; NIR's LIF resets to v_reset")
    return m.alpha.detach(), m.beta.detach()


LIF_DEFINITION = register(NeuronDefinition(
    name="lif", class_name="LIF", options=F.LIFParameters, state=F.LIFState, step=F.lif_step, module=LIF,
    # one multiply (the decay) and two adds
    ops={"mul": 1, "add": 2}, nir=_lif_decays, track=lambda m: {},
))
PLIF_DEFINITION = register(NeuronDefinition(
    name="plif", class_name="PLIF", options=F.LIFParameters, state=F.LIFState, step=F.lif_step, module=PLIF,
    ops={"mul": 1, "add": 2}, nir=_lif_decays, track=lambda m: {"tau": m.tau}, labels={"tau": "τ (time constant)"},
))
DALIF_DEFINITION = register(NeuronDefinition(
    name="dalif", class_name="DALIF", options=F.DALIFParameters, state=F.LIFState, step=F.dalif_step, module=DALIF,
    # input and potential scaled (two multiplies), one add
    ops={"mul": 2, "add": 1}, nir=_dalif_decays, granularity="layer",
    track=lambda m: {"alpha": float(m.alpha.detach().mean()), "beta": float(m.beta.detach().mean())},
    labels={"alpha": "α (spatial decay)", "beta": "β (temporal decay)"},
))
ARLIF_DEFINITION = register(NeuronDefinition(
    name="arlif", class_name="ARLIF", options=F.ARLIFParameters, state=F.ARLIFState, step=F.arlif_step, module=ARLIF,
    # tanh(x), tanh(a)*tanh(x), three sigmoids and the memory update
    ops={"mul": 7, "add": 8, "transcendental": 4},
    nir="AR-LIF's adaptive reset and input-dependent threshold have no NIR node",
    track=lambda m: {"tanh_a": float(torch.tanh(m.a.detach())), "c": float(m.c.detach())},
    # theta_t = V_th + tanh(a) tanh(X_t); the memory's leak gates are sigma(c X_t) (docs/neurons.md, AR-LIF)
    labels={"tanh_a": "tanh(a) (threshold amplitude)", "c": "c (leak-gate input scale)"},
))
