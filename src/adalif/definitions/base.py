"""The neuron definition record, the registry, and the module every definition gets.

A :class:`NeuronDefinition` says everything adalif knows about a neuron family, in one place:
its name (the config's ``neuron:`` value), its options with their defaults, its parameters (shape,
initial value, the constraint users read, learnable or not), its state and step function, its
operation count per step, and how it maps to NIR (or why it cannot). :func:`register` makes it
available by name to models, configs, analysis, export and the SpikingJelly-style nodes; the
module, its constructor and its validation are derived from the record, with no other code.
docs/neurons.md, "Your own neuron", shows a complete example.
"""

from __future__ import annotations

import collections
import functools
import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..functional.checks import check_choice
from ..functional.loop import Dynamics, StepFunction
from ..surrogate import get_surrogate

__all__ = ["Parameter", "NeuronDefinition", "Source", "register", "get", "registered", "definition_of", "source_of",
           "load_plugins", "ENTRY_POINT_GROUP"]

#: Where a parameter lives: one value per layer; one per channel (one per layer when the neuron is
#: built with ``granularity="layer"``); one per time step and channel (``[T, C]``, or ``[T]``).
PER = ("layer", "channel", "step")
#: How closely a constrained parameter must read back its float ``init`` (relative, in float64).
READ_BACK_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Parameter:
    """A parameter of a neuron family.

    ``init``: the initial *value* (what users read, after ``constrain``), or a function
    ``(shape, options) -> raw tensor`` for anything else (random gates). ``constrain``: raw ->
    value, a torch function (``torch.sigmoid``), None for the identity; ``inverse``: value -> raw,
    required with ``constrain`` and a float ``init`` (a definition without it is refused, and the
    module checks that ``constrain(inverse(init))`` reads back ``init``). ``learnable``: a bool, or
    a function of the options (a gate that a flag freezes). ``weight_decay`` and ``lr_scale`` are
    what the optimiser gives this parameter. ``label``: how reports and ``adalif neurons`` name
    it, the symbol and its meaning (``"α (spatial decay)"``); default: the name."""

    name: str
    init: Union[float, Callable[[Tuple[int, ...], Mapping[str, Any]], torch.Tensor]]
    per: str = "layer"
    constrain: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    inverse: Optional[Callable[[float], float]] = None
    learnable: Union[bool, Callable[[Mapping[str, Any]], bool]] = True
    weight_decay: bool = True
    lr_scale: float = 1.0
    doc: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        check_choice(self.per, PER, f"Parameter({self.name!r}).per")
        if not self.label:
            object.__setattr__(self, "label", self.name)


@dataclass(frozen=True)
class NeuronDefinition:
    """Everything adalif knows about one neuron family (see the module docstring).

    * ``options``: a NamedTuple class whose fields and defaults are the constructor's options (a
      ``surrogate`` field is required); ``choices`` restricts string options, ``check`` validates
      the whole record (raise ``ValueError`` naming the option).
    * ``parameters``: :class:`Parameter` records; the step sees each one's constrained value.
    * ``state``: a NamedTuple class; its first field is the membrane potential (``v_seq``).
      ``initial_state(like, values)``: the state before the first step (default: zeros).
    * ``step(x_t, state, values) -> StepOutput``: one step, ``values`` holding the options and the
      parameter values, viewed to broadcast against ``x_t`` ``[B, C, ...]`` (per-step values
      sliced at the step).
    * ``ops``: operations per neuron per step (``mul``, ``add``, ``transcendental``, ...) for the
      energy estimate; ``nir``: a function ``(module, name) -> nir.Node``, or a string saying why
      the neuron has no NIR node.
    * ``module``: a hand-written module class (the built-in neurons); None derives one.
    * ``track``: ``module -> {name: float}``, what the parameter tracker logs (default: the mean of
      each parameter's value); ``labels``: the readable names of tracked values that are not
      :class:`Parameter` records (a hand-written module's), by key (:meth:`label`).
      ``initialize(module)``: runs after the parameters are made (random initial values, say).
    * ``doc``: what the neuron is, for ``adalif neurons NAME`` (default: the module class's
      docstring); the equations shown there are the docstring of the step function's module.
    """

    name: str
    class_name: str
    options: type
    state: type
    step: StepFunction
    parameters: Tuple[Parameter, ...] = ()
    initial_state: Optional[Callable[[torch.Tensor, NamedTuple], NamedTuple]] = None
    ops: Mapping[str, int] = field(default_factory=dict)
    nir: Union[str, Callable[[nn.Module, str], Any]] = "no NIR mapping is defined for this neuron"
    choices: Mapping[str, Sequence[str]] = field(default_factory=dict)
    check: Optional[Callable[[NamedTuple], None]] = None
    granularity: str = "layer"
    module: Optional[type] = None
    track: Optional[Callable[[nn.Module], Dict[str, float]]] = None
    labels: Mapping[str, str] = field(default_factory=dict)
    initialize: Optional[Callable[[nn.Module], None]] = None
    doc: str = ""
    #: False for a neuron whose output is a potential, not spikes (a leaky-integrator readout).
    spiking: bool = True

    def __post_init__(self) -> None:
        clash = set(getattr(self.options, "_fields", ())) & {p.name for p in self.parameters}
        if clash:
            raise ValueError(f"NeuronDefinition({self.name!r}): {sorted(clash)} named both an option and a parameter")
        if "surrogate" not in getattr(self.options, "_fields", ()):
            raise ValueError(f"NeuronDefinition({self.name!r}).options: a NamedTuple class with a 'surrogate' field")
        check_choice(self.granularity, ("layer", "channel"), f"NeuronDefinition({self.name!r}).granularity")
        for p in self.parameters:
            if p.constrain is not None and p.inverse is None and not callable(p.init):
                # Without the inverse the raw tensor would start at init and users would read constrain(init).
                raise ValueError(f"NeuronDefinition({self.name!r}).parameters: {p.name!r} has constrain="
                                 f"{getattr(p.constrain, '__name__', repr(p.constrain))} but no inverse; its init "
                                 f"{p.init!r} is the value users read, so give inverse (value -> raw), or an init "
                                 f"function (shape, options) -> raw tensor")

    # -- derived, once per record (cached in the instance; the record's fields stay frozen) -----
    @functools.cached_property
    def values(self) -> type:
        """The record the step function reads: the options, then the parameter values."""
        return collections.namedtuple(f"{self.class_name}Values", [*self.options._fields, *(p.name for p in self.parameters)])

    @property
    def per_channel(self) -> bool:
        return any(p.per == "channel" for p in self.parameters)

    @property
    def per_step(self) -> bool:
        return any(p.per == "step" for p in self.parameters)

    @functools.cached_property
    def dynamics(self) -> Dynamics:
        """The record :func:`adalif.functional.run` and the kernels run."""
        return _dynamics(self)

    @functools.cached_property
    def _derived(self) -> type:
        return _derived_module(self)

    def module_class(self) -> type:
        """The ``nn.Module`` class of this neuron: the hand-written one, or the one derived from
        this record (created once)."""
        return self.module if self.module is not None else self._derived

    def tracked(self, module: nn.Module) -> Dict[str, float]:
        """The values the parameter tracker logs for ``module``."""
        if self.track is not None:
            return self.track(module)
        return {p.name: float(getattr(module, p.name).detach().float().mean()) for p in self.parameters}

    def label(self, key: str) -> str:
        """The readable name of the tracked value ``key`` (``param/<layer>/<key>``): ``labels[key]``,
        else the label of the parameter of that name, else the key itself."""
        if key in self.labels:
            return self.labels[key]
        return next((p.label for p in self.parameters if p.name == key), key)


_REGISTRY: Dict[str, NeuronDefinition] = {}
#: Where each neuron that is not adalif's own came from (recorded when it was imported through
#: :func:`adalif.definitions.import_neurons` or an entry point).
_SOURCES: Dict[str, "Source"] = {}
ENTRY_POINT_GROUP = "adalif.neurons"
"""The entry-point group through which installed packages add neurons (docs/neurons.md)."""
_PLUGINS_LOADED: set = set()
_ENTRY_POINTS: Optional[tuple] = None  # found once per process (a scan of every installed package)


class Source(NamedTuple):
    """Where a registered neuron was defined. ``kind``: ``adalif`` (built in), ``file`` (``location``
    is its absolute path), ``module`` (an importable module's name), ``entry point`` (an installed
    package's, ``location`` is ``module:object (distribution)``), ``python`` (registered by code run
    some other way: a script, a notebook; ``location`` is the module's name, ``__main__`` for a
    script)."""

    kind: str
    location: str


def register(definition: NeuronDefinition, replace: bool = False) -> NeuronDefinition:
    """Make ``definition`` available by its name (``create_model(..., neuron=name)``, configs,
    analysis, export, SpikingJelly-style nodes). Registering a taken name raises unless ``replace``."""
    if not isinstance(definition, NeuronDefinition):
        raise TypeError(f"register: expected a NeuronDefinition, got {type(definition).__name__}")
    taken = _REGISTRY.get(definition.name)
    if taken is not None and taken is not definition and _code_module(taken).split(".")[0] == "adalif" \
            and _code_module(definition).split(".")[0] != "adalif":
        # A checkpoint of the built-in would load with the other definition, and configs would mean
        # another neuron by the same name: never replaced.
        raise ValueError(f"register: {definition.name!r} is the name of adalif's built-in {taken.class_name}; give "
                         f"your neuron a name of its own")
    if taken is not None and not replace and taken is not definition:
        raise ValueError(f"register: a neuron named {definition.name!r} is registered already (by "
                         f"{_code_module(taken)}); pass replace=True to replace it")
    _REGISTRY[definition.name] = definition
    return definition


def get(name: str) -> NeuronDefinition:
    """The registered :class:`NeuronDefinition` named ``name`` (installed packages' entry points are
    loaded the first time an unknown name is asked for); an unknown name raises ``ValueError``."""
    if name not in _REGISTRY:
        load_plugins()  # an installed package's neuron, the first time an unknown name is asked for
    if name not in _REGISTRY:
        raise ValueError(f"neuron: unknown neuron {name!r}; expected one of {registered()} (a neuron of your own: "
                         f"--import FILE.py or MODULE; adalif neurons lists them)")
    return _REGISTRY[name]


def registered() -> List[str]:
    """Every registered neuron's name: adalif's, those imported, and those of installed packages
    (their entry points are loaded by the first call)."""
    load_plugins()
    return sorted(_REGISTRY)


def source_of(name: str) -> Source:
    """Where the registered neuron ``name`` was defined (:class:`Source`)."""
    if name in _SOURCES:
        return _SOURCES[name]
    module = _code_module(get(name))
    return Source("adalif" if module.split(".")[0] == "adalif" else "python", module)


def _record_sources(before: Mapping[str, NeuronDefinition], module_name: str, source: Source) -> List[str]:
    """The neurons that an import of ``module_name`` defined: those registered since ``before``
    (recorded as coming from ``source``), or, when nothing new was registered because the module had
    been imported earlier, those whose step or module class lives in it or its submodules."""
    new = [n for n, d in _REGISTRY.items() if before.get(n) is not d]
    for n in new:
        _SOURCES[n] = source
    if new:
        return new
    return [n for n, d in _REGISTRY.items() if _code_module(d) == module_name
            or _code_module(d).startswith(module_name + ".")]


def _code_module(d: NeuronDefinition) -> str:
    return (d.module or d.step).__module__


def load_plugins() -> None:
    """Import every installed package's neurons: the entry points of the group ``adalif.neurons``
    (``name = module`` or ``name = module:DEFINITION``; a NeuronDefinition that the entry point names
    is registered if its module did not), found once per process. Each loads once; one that fails to
    import, or registers nothing, raises :class:`~adalif.errors.NeuronImportError` naming it (each
    time it is tried)."""
    global _ENTRY_POINTS
    from ..errors import NeuronImportError

    if _ENTRY_POINTS is None:
        from importlib.metadata import entry_points

        _ENTRY_POINTS = tuple(entry_points(group=ENTRY_POINT_GROUP))
    for ep in _ENTRY_POINTS:
        key = (ep.name, ep.value)
        if key in _PLUGINS_LOADED:
            continue
        _PLUGINS_LOADED.add(key)  # a plugin that asks for the registry while it loads does not load twice
        dist = getattr(getattr(ep, "dist", None), "name", None) or "an installed package"
        where = f"entry point {ep.name} = {ep.value} of {dist} (group {ENTRY_POINT_GROUP})"
        before = dict(_REGISTRY)
        try:
            loaded = ep.load()
            if isinstance(loaded, NeuronDefinition):
                register(loaded)
        except Exception as err:  # the plugin's own code: say which plugin, and what went wrong
            _PLUGINS_LOADED.discard(key)
            raise NeuronImportError(f"{where}: failed: {type(err).__name__}: {err}; fix the package or uninstall "
                                    f"it (pip uninstall {dist})") from err
        if not _record_sources(before, ep.module, Source("entry point", f"{ep.value} ({dist})")):
            _PLUGINS_LOADED.discard(key)
            raise NeuronImportError(f"{where}: registers no neuron (it should call adalif.definitions.register, "
                                    f"or name a NeuronDefinition)")


def definition_of(module: nn.Module) -> NeuronDefinition:
    """The registered definition of a neuron module (the nearest registered class in its MRO, so a
    SpikingJelly-style node is its neuron's); an unregistered neuron is an error, never counted or
    exported as another neuron."""
    classes = {d.module_class(): d for d in _REGISTRY.values()}
    for cls in type(module).__mro__:
        if cls in classes:
            return classes[cls]
    raise ValueError(f"{type(module).__name__}: not a registered neuron (register its definition with "
                     f"adalif.definitions.register); registered: {registered()}")


# -- the derived module ------------------------------------------------------------------------
def _broadcast(value, like: torch.Tensor):
    # [C] -> [C, 1, ..., 1] against one step [B, C, ...]; scalars broadcast as they are.
    if isinstance(value, torch.Tensor) and value.dim() == 1:
        return value.view(-1, *[1] * (like.dim() - 2))
    return value


def _dynamics(d: NeuronDefinition) -> Dynamics:
    channel = [p.name for p in d.parameters if p.per == "channel"]
    step = [p.name for p in d.parameters if p.per == "step"]

    def at(values, t: int, x_t: torch.Tensor):
        changes = {name: _broadcast(getattr(values, name), x_t) for name in channel}
        changes.update({name: _broadcast(getattr(values, name)[t], x_t) for name in step})
        return values._replace(**changes)

    def initial_state(like: torch.Tensor, values) -> NamedTuple:
        if d.initial_state is not None:
            return d.initial_state(like, values)
        return d.state(*(torch.zeros_like(like) for _ in d.state._fields))

    return Dynamics(d.name, d.step, initial_state, at if channel or step else None)


def _check_option(d: NeuronDefinition, key: str, value: Any, default: Any) -> Any:
    if key == "surrogate":
        return get_surrogate(value)
    if key in d.choices:
        return check_choice(value, d.choices[key], key)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{key}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if not (isinstance(value, int) and not isinstance(value, bool)):
            raise ValueError(f"{key}: expected an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)):
            raise ValueError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    return value


def _derived_module(d: NeuronDefinition) -> type:
    from ..neurons import Neuron

    params = d.parameters

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        given = dict(bound.arguments)
        given.pop("self")
        Neuron.__init__(self, given.pop("backend"))
        granularity = given.pop("granularity", "layer")
        num_channels = given.pop("num_channels", None)
        T = given.pop("T", None)
        inits = {p.name: given.pop(f"{p.name}_init") for p in params if not callable(p.init)}
        options = d.options(**{k: _check_option(d, k, v, d.options._field_defaults.get(k)) for k, v in given.items()})
        if d.check is not None:
            d.check(options)
        self.options = options
        if d.per_channel:
            check_choice(granularity, ("layer", "channel"), "granularity")
            if granularity == "channel" and not (isinstance(num_channels, int) and num_channels > 0):
                raise ValueError(f"num_channels: granularity='channel' needs a positive channel count, got {num_channels!r}")
            if granularity == "layer" and num_channels is not None:
                raise ValueError("num_channels: only used with granularity='channel'; leave it None for 'layer'")
        self.granularity, self.num_channels = granularity, num_channels
        if d.per_step and not (isinstance(T, int) and not isinstance(T, bool) and T > 0):
            raise ValueError(f"T: {d.class_name} has a parameter per time step, so it needs the number of steps T "
                             f"(a positive integer), got {T!r}")
        self.T = T
        for p in params:
            shape = _shape(p, granularity, num_channels, T)
            if callable(p.init):
                raw = p.init(shape, options._asdict()).detach().clone().to(torch.get_default_dtype())
                if tuple(raw.shape) != shape:
                    raise ValueError(f"{p.name}: its init gave shape {tuple(raw.shape)}, expected {shape}")
            else:
                value = inits[p.name]
                if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)):
                    raise ValueError(f"{p.name}_init: expected a finite number, got {value!r}")
                try:
                    raw_value = p.inverse(value) if p.inverse is not None else value
                except (ValueError, ZeroDivisionError) as err:
                    raise ValueError(f"{p.name}_init: {value!r} is outside the range of {d.class_name}'s {p.name} "
                                     f"({err})") from None
                if p.constrain is not None:
                    # On the CPU explicitly: a model may be built under torch.device("meta") (config checks).
                    read = float(p.constrain(torch.tensor(float(raw_value), dtype=torch.float64, device="cpu")))
                    if not (math.isfinite(float(raw_value))
                            and abs(read - value) <= READ_BACK_TOLERANCE * max(1.0, abs(value))):
                        raise ValueError(f"{p.name}_init: {value!r} reads back as {read!r} through {d.class_name}'s "
                                         f"{p.name} (constrain(inverse(value))): the value is outside its range, or "
                                         f"the definition's inverse does not invert its constrain")
                raw = torch.full(shape, float(raw_value))
            learnable = p.learnable(options._asdict()) if callable(p.learnable) else bool(p.learnable)
            if learnable:
                self.register_parameter(_raw_name(p), nn.Parameter(raw))
            else:
                self.register_buffer(_raw_name(p), raw)
        if d.initialize is not None:
            d.initialize(self)

    def __getattr__(self, name):
        for p in params:
            if name == p.name and _raw_name(p) != p.name:
                raw = Neuron.__getattr__(self, _raw_name(p))
                return p.constrain(raw) if p.constrain is not None else raw
        if name in d.options._fields and "options" in self.__dict__:
            return getattr(self.__dict__["options"], name)
        return Neuron.__getattr__(self, name)

    def params_(self):
        raw = {p.name: getattr(self, _raw_name(p)) for p in params}
        values = {p.name: (p.constrain(raw[p.name]) if p.constrain is not None else raw[p.name]) for p in params}
        return d.values(*self.options, *(values[p.name] for p in params))

    def _check_step_input(self, x, name):
        if d.per_channel and self.granularity == "channel" and (x.dim() < 2 or x.shape[1] != self.num_channels):
            raise ValueError(f"{name}: {d.class_name} with num_channels={self.num_channels} expects input "
                             f"[T, B, {self.num_channels}, ...] (one step [B, {self.num_channels}, ...]), got one step "
                             f"of shape {tuple(x.shape)}")

    def run(self, x, state=None, return_traces=False):
        if d.per_step and x.dim() >= 1 and x.shape[0] != self.T:
            raise ValueError(f"x: {d.class_name} was built for T={self.T} steps (a parameter per step), got a "
                             f"sequence of {x.shape[0]} steps")
        return Neuron.run(self, x, state, return_traces)

    def extra_repr(self):
        shown = [f"{k}={v!r}" for k, v in self.options._asdict().items()]
        if d.per_channel:
            shown.append(f"granularity={self.granularity!r}" + (f", num_channels={self.num_channels}" if self.num_channels else ""))
        if d.per_step:
            shown.append(f"T={self.T}")
        return ", ".join(shown)

    P = inspect.Parameter
    sig = [P("self", P.POSITIONAL_OR_KEYWORD)]
    sig += [P(k, P.KEYWORD_ONLY, default=v) for k, v in d.options._field_defaults.items()]
    missing = [k for k in d.options._fields if k not in d.options._field_defaults]
    if missing:
        raise ValueError(f"NeuronDefinition({d.name!r}).options: every option needs a default; {missing} have none")
    sig += [P(f"{p.name}_init", P.KEYWORD_ONLY, default=p.init) for p in params if not callable(p.init)]
    if d.per_channel:
        sig += [P("granularity", P.KEYWORD_ONLY, default=d.granularity), P("num_channels", P.KEYWORD_ONLY, default=None)]
    if d.per_step:
        sig.append(P("T", P.KEYWORD_ONLY, default=None))
    sig.append(P("backend", P.KEYWORD_ONLY, default=None))
    signature = inspect.Signature(sig)
    namespace = {
        "__init__": __init__, "__getattr__": __getattr__, "params": params_, "_check_step_input": _check_step_input,
        "run": run, "extra_repr": extra_repr, "definition": d, "dynamics": d.dynamics, "spiking": d.spiking,
        "__doc__": d.doc or f"The {d.class_name} neuron (adalif definition {d.name!r}).",
        "__module__": getattr(d.step, "__module__", __name__),
    }
    if d.per_step:
        def step(self, x, state=None, t: int = 0):
            """One time step ``t`` ``[B, ...]`` (the per-step parameters are those of step ``t``)."""
            if not (isinstance(t, int) and 0 <= t < self.T):
                raise ValueError(f"t: expected a step in [0, {self.T}), got {t!r}")
            return Neuron.step(self, x, state, t)

        namespace["step"] = step
    cls = type(d.class_name, (Neuron,), namespace)
    cls.__init__.__signature__ = signature
    cls.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])
    return cls


def _raw_name(p: Parameter) -> str:
    # The raw tensor keeps the parameter's name when the value is the raw tensor itself; otherwise
    # it is stored as ``raw_<name>`` and ``module.<name>`` is the constrained value users read.
    return p.name if p.constrain is None else f"raw_{p.name}"


def _shape(p: Parameter, granularity: str, num_channels: Optional[int], T: Optional[int]) -> Tuple[int, ...]:
    channel = (num_channels,) if granularity == "channel" else ()
    if p.per == "layer":
        return ()
    if p.per == "channel":
        return channel
    return (T, *channel)
