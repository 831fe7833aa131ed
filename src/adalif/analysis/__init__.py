"""Analysis of spiking networks: firing rates, operation counts and energy. Works on any
``nn.Module`` that contains adalif neurons, and imports only torch and numpy (no Lightning); the
run-level tools built on it (reports, comparisons, ablations, figures) are :mod:`adalif.experiments`."""

from . import operations
from .firing import FiringRateMonitor
from .operations import ENERGY_PRESETS, OperationCounts, count_operations, parameter_overhead


def __getattr__(name: str):
    """``NEURON_OPS``: class name -> {operation: count} per neuron per step of each registered neuron
    (:func:`adalif.analysis.operations.__getattr__`), read from the definitions at each access."""
    if name == "NEURON_OPS":  # read from the registered definitions at each access
        return operations.NEURON_OPS
    raise AttributeError(name)


__all__ = ["ENERGY_PRESETS", "FiringRateMonitor", "NEURON_OPS", "OperationCounts", "count_operations",
           "parameter_overhead"]
