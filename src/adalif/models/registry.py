"""Model registry and neuron specs.

``create_model("resnet19", neuron="dalif", num_classes=10, in_channels=3, T=4)`` builds any
registered model with any registered neuron (:mod:`adalif.definitions`: ``"lif"``, ``"plif"``,
``"dalif"``, ``"arlif"``, ``"clif"``, ``"glif"``, your own) or an official AR-LIF baseline of
:data:`PRESETS`. A neuron spec is a name or a dict ``{"name": "arlif", "decay": 0.5, ...}`` of
constructor arguments; with ``{"name": "dalif", "granularity": "channel"}`` (or any neuron with
per-channel parameters) each layer gets its own channel count, and a neuron with a parameter per
time step (GLIF) gets the model's T.
"""

from __future__ import annotations

import inspect
from typing import Callable, Dict, Optional, Union

from torch import nn

from .. import definitions
from ..layers import BN_MODES, TimeBatchNorm, set_batch_norm_mode
from ..neurons import Neuron
from ..surrogate import Rectangle

PRESETS = {
    "hard_lif": ("lif", dict(tau=2.0, decay_input=False, v_reset=0.0, surrogate=Rectangle(1.0))),
    "soft_lif": ("lif", dict(tau=2.0, decay_input=False, v_reset=None, surrogate=Rectangle(1.0))),
    "official_plif": ("plif", dict(init_tau=2.0, decay_input=False, v_reset=None, surrogate=Rectangle(1.0))),
}
"""The official AR-LIF code's baselines (``-neuron_model``), with their Rectangle(1) surrogate:
``hard_lif`` is its ``LIF`` and ``hardLIF`` (SpikingJelly's
``LIFNode(tau=2, decay_input=False, v_reset=0)``), ``soft_lif`` its ``softLIF``,
``official_plif`` its ``PLIFNeuron``. A spec may override any argument:
``{"name": "hard_lif", "tau": 3.0}``. docs/neurons.md has the table."""
NeuronSpec = Union[str, Dict]
NeuronFactory = Callable[[int], Neuron]

_MODELS: Dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register ``fn(neuron, num_classes, in_channels, T, **kwargs)`` under its name."""
    _MODELS[fn.__name__] = fn
    return fn


def list_models():
    """The names of every registered model (:func:`register_model`), sorted: what ``create_model`` takes."""
    return sorted(_MODELS)


def __getattr__(name: str):
    """``NEURONS``: neuron name -> module class of every registered neuron (adalif.definitions), the
    registry's view, kept for code written before definitions."""
    if name == "NEURONS":
        return {n: definitions.get(n).module_class() for n in definitions.registered()}
    raise AttributeError(name)


def neuron_names():
    """Every name a neuron spec may take: the registered definitions and the presets."""
    return sorted(definitions.registered() + list(PRESETS))


def neuron_factory(spec: NeuronSpec, T: Optional[int] = None) -> NeuronFactory:
    """A callable ``num_channels -> neuron module`` for a spec; arguments are checked here, once.
    ``T``: the model's number of steps, for a neuron with a parameter per step."""
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"neuron: expected a name or a dict with 'name', got {spec!r}")
    kwargs = dict(spec)
    name = str(kwargs.pop("name")).lower()
    if name in PRESETS:
        name, defaults = PRESETS[name]
        kwargs = {**defaults, **kwargs}
    if name not in definitions.registered():
        raise ValueError(f"neuron: unknown neuron {name!r}; expected one of {neuron_names()} (a neuron of your own: "
                         f"--import FILE.py or MODULE; adalif neurons lists them)")
    d = definitions.get(name)
    cls = d.module_class()
    allowed = set(inspect.signature(cls).parameters)
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ValueError(f"neuron.{unknown[0]}: not an argument of {cls.__name__}; expected one of {sorted(allowed)}")
    per_channel = "num_channels" in allowed and kwargs.get("granularity", _default(cls, "granularity")) == "channel"
    if "T" in allowed and kwargs.get("T") is None:
        kwargs["T"] = T

    def make(num_channels: int) -> Neuron:
        return cls(**kwargs, num_channels=num_channels) if per_channel else cls(**kwargs)

    make(4)  # surface a bad value (out-of-range decay, unknown surrogate) before any model is built
    return make


def _default(cls, arg: str):
    parameter = inspect.signature(cls).parameters.get(arg)
    return None if parameter is None else parameter.default


def create_model(name: str, *, neuron: NeuronSpec = "lif", bn: str = "time_batch", input_size: Optional[int] = None,
                 bn_threshold: float = 1.0, **kwargs) -> nn.Module:
    """Build registered model ``name`` with any neuron; ``num_classes``, ``in_channels``, ``T``
    and model options default to the model's own. The model maps ``[B, C, H, W]`` (repeated T
    times) or ``[T, B, C, H, W]`` to per-step logits ``[T, B, num_classes]``.

    ``bn``: the training statistics of every batch norm, ``"time_batch"`` (over T·B) or
    ``"per_step"`` (over B, each step separately, as a single-step network called T times);
    see :class:`~adalif.layers.TimeBatchNorm` and docs/models.md. ``input_size``: the side of the
    (square) input, for the models whose layers depend on it (``vggsnn``); the others ignore it.
    ``bn_threshold``: tdBN's :math:`V_{th}` factor, multiplied into every batch norm's scale (GLIF's
    recipe normalises by its constant threshold 0.5; 1 leaves the model as it is)."""
    if bn not in BN_MODES:
        raise ValueError(f"model.bn: got {bn!r}, expected one of {list(BN_MODES)}")
    if name not in _MODELS:
        raise ValueError(f"model: unknown model {name!r}; expected one of {list_models()}")
    for arg in ("num_classes", "in_channels", "T"):
        value = kwargs.get(arg, 1)
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise ValueError(f"{arg}: expected an integer >= 1, got {value!r}")
    takes = set(inspect.signature(_MODELS[name]).parameters)
    if input_size is not None and "input_size" in takes:
        kwargs["input_size"] = input_size
    allowed = takes - {"neuron"}
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ValueError(f"model.{unknown[0]}: not an option of {name}; expected one of {sorted(allowed)}")
    if not (isinstance(bn_threshold, (int, float)) and not isinstance(bn_threshold, bool) and bn_threshold > 0):
        raise ValueError(f"model.bn_threshold: expected a positive number, got {bn_threshold!r}")
    T = kwargs.get("T", inspect.signature(_MODELS[name]).parameters["T"].default)
    model = set_batch_norm_mode(_MODELS[name](neuron_factory(neuron, T), **kwargs), bn)
    if bn_threshold != 1.0:
        for m in model.modules():
            if isinstance(m, TimeBatchNorm):
                m.scale *= float(bn_threshold)
    return model


def model_for_data(name: str, neuron: NeuronSpec, options: Dict, *, num_classes: int, in_channels: int, T: int,
                   input_size: Optional[int] = None) -> nn.Module:
    """A run's model: its config's ``name``, ``neuron`` and ``options``, with the sizes of its data.
    An ``options["input_size"]`` that differs from the data's is an error (a size typed twice)."""
    options = dict(options)
    given = options.pop("input_size", input_size)
    if input_size is not None and given != input_size:
        raise ValueError(f"model.options.input_size: {given!r} differs from the data's input size {input_size}; "
                         f"leave it out, the data sets it")
    return create_model(name, neuron=neuron, num_classes=num_classes, in_channels=in_channels, T=T,
                        input_size=given, **options)
