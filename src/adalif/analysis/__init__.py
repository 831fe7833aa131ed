"""Analysis of trained spiking networks: firing rates (more to come: operation counts, energy,
reports). Works on any ``nn.Module`` that contains adalif neurons."""

from .firing import FiringRateMonitor

__all__ = ["FiringRateMonitor"]
