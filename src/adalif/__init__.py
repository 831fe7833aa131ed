"""adalif: deep spiking neural networks with adaptive LIF neurons (DA-LIF, AR-LIF, CLIF, GLIF).

The core (``adalif.surrogate``, ``adalif.functional``, ``adalif.kernels``, ``adalif.neurons``,
``adalif.definitions``) imports only torch and numpy.
"""

__version__ = "0.1.0"

from .neurons import ARLIF, DALIF, LIF, PLIF  # noqa: E402
from .definitions import CLIF, GLIF  # noqa: E402
from .surrogate import ATan, DspikeTanh, Rectangle, Sigmoid, Triangle  # noqa: E402

__all__ = ["ARLIF", "CLIF", "DALIF", "GLIF", "LIF", "PLIF", "ATan", "DspikeTanh", "Rectangle", "Sigmoid", "Triangle", "__version__"]
