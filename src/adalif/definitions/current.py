"""Neurons for NIR's current-based and non-spiking nodes (docs/analysis.md, "NIR import"): what
``adalif.import_nir`` builds for ``CubaLIF``, ``LI`` and ``CubaLI``, each NIR equation discretised
with forward Euler at the exporter's ``dt``, its coefficients stored as learnable parameters (per
layer or per channel):

* ``cuba_lif``: a synaptic current :math:`I_t = a I_{t-1} + g X_t`
  (:math:`a = 1 - dt/\\tau_{syn}`, :math:`g = dt\\,w_{in}/\\tau_{syn}`), then a LIF membrane
  :math:`H_t = \\beta V_{t-1} + \\alpha I_t` (:math:`\\beta = 1 - dt/\\tau_{mem}`,
  :math:`\\alpha = dt\\,R/\\tau_{mem}`), a spike on :math:`H_t \\ge V_{th}` and a hard reset to 0;
* ``leaky_integrator``: :math:`H_t = \\beta V_{t-1} + \\alpha X_t`, no spike: the output is
  :math:`H_t` (a readout);
* ``cuba_li``: the synaptic current, then the leaky integrator.

The membrane uses the current of the same step. The two non-spiking neurons declare
``spiking=False``: their output is a potential, so nothing treats it as spikes (1-bit storage in
:mod:`adalif.memory`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..functional.records import StepOutput
from ..surrogate import DspikeTanh, Surrogate
from .base import NeuronDefinition, Parameter, register


class CubaLIFOptions(NamedTuple):
    v_threshold: float = 1.0
    surrogate: Surrogate = DspikeTanh(3.0)


class IntegratorOptions(NamedTuple):
    surrogate: Surrogate = DspikeTanh(3.0)  # unused: no spike (the definitions need the field)


class CubaState(NamedTuple):
    v: torch.Tensor  # membrane potential (after reset)
    i: torch.Tensor  # synaptic current


class LIState(NamedTuple):
    v: torch.Tensor


def cuba_lif_step(x: torch.Tensor, state: CubaState, p) -> StepOutput:
    i = p.syn_decay * state.i + p.syn_gain * x
    h = p.mem_decay * state.v + p.mem_gain * i
    s = p.surrogate(h - p.v_threshold)
    return StepOutput(s, CubaState(h * (1.0 - s), i), h)


def li_step(x: torch.Tensor, state: LIState, p) -> StepOutput:
    h = p.mem_decay * state.v + p.mem_gain * x
    return StepOutput(h, LIState(h), h)


def cuba_li_step(x: torch.Tensor, state: CubaState, p) -> StepOutput:
    i = p.syn_decay * state.i + p.syn_gain * x
    h = p.mem_decay * state.v + p.mem_gain * i
    return StepOutput(h, CubaState(h, i), h)


_MEMBRANE = (Parameter("mem_decay", 0.5, per="channel", doc="beta = 1 - dt/tau_mem", label="β (membrane decay)"),
             Parameter("mem_gain", 0.5, per="channel", doc="alpha = dt R/tau_mem", label="α (membrane gain)"))
_SYNAPSE = (Parameter("syn_decay", 0.5, per="channel", doc="a = 1 - dt/tau_syn", label="a (synaptic decay)"),
            Parameter("syn_gain", 0.5, per="channel", doc="g = dt w_in/tau_syn", label="g (synaptic gain)"))
_NO_EXPORT = "exported back to NIR: not built yet"

CUBA_LIF = register(NeuronDefinition(
    name="cuba_lif", class_name="CubaLIF", options=CubaLIFOptions, state=CubaState, step=cuba_lif_step,
    parameters=_SYNAPSE + _MEMBRANE, ops={"mul": 4, "add": 2}, nir=f"cuba_lif: {_NO_EXPORT}",
    doc="Current-based LIF (NIR's CubaLIF, forward Euler): synaptic current, LIF membrane, hard reset to 0."))
LEAKY_INTEGRATOR = register(NeuronDefinition(
    name="leaky_integrator", class_name="LeakyIntegrator", options=IntegratorOptions, state=LIState, step=li_step,
    parameters=_MEMBRANE, ops={"mul": 2, "add": 1}, nir=f"leaky_integrator: {_NO_EXPORT}", spiking=False,
    doc="Leaky integrator (NIR's LI, forward Euler): a non-spiking readout whose output is its potential."))
CUBA_LI = register(NeuronDefinition(
    name="cuba_li", class_name="CubaLI", options=IntegratorOptions, state=CubaState, step=cuba_li_step,
    parameters=_SYNAPSE + _MEMBRANE, ops={"mul": 4, "add": 2}, nir=f"cuba_li: {_NO_EXPORT}", spiking=False,
    doc="Current-based leaky integrator (NIR's CubaLI, forward Euler): non-spiking."))
