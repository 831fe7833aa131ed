"""adalif: deep spiking neural networks with adaptive LIF neurons (DA-LIF, AR-LIF).

The core (``adalif.surrogate``, ``adalif.functional``, ``adalif.kernels``, ``adalif.neurons``)
imports only torch and numpy.
"""

__version__ = "0.1.0"

from .neurons import ARLIF, DALIF, LIF, PLIF  # noqa: E402
from .surrogate import ATan, DspikeTanh, Rectangle, Sigmoid, Triangle  # noqa: E402

__all__ = ["ARLIF", "DALIF", "LIF", "PLIF", "ATan", "DspikeTanh", "Rectangle", "Sigmoid", "Triangle", "__version__"]
