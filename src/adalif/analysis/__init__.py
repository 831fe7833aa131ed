"""Analysis of trained spiking networks: firing rates, operation counts and energy (reports,
figures and NIR export to come). Works on any ``nn.Module`` that contains adalif neurons."""

from .firing import FiringRateMonitor
from .operations import ENERGY_PRESETS, NEURON_OPS, OperationCounts, count_operations, parameter_overhead

__all__ = ["ENERGY_PRESETS", "FiringRateMonitor", "NEURON_OPS", "OperationCounts", "count_operations",
           "parameter_overhead"]
