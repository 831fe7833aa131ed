"""adalif: deep spiking neural networks with adaptive LIF neurons (DA-LIF, AR-LIF, CLIF, GLIF).

The core (``adalif.surrogate``, ``adalif.functional``, ``adalif.kernels``, ``adalif.neurons``,
``adalif.definitions``) imports only torch and numpy.
"""

__version__ = "0.1.0"
"""The version of adalif (PEP 440), as ``adalif --version`` prints it and runs record it."""

from . import definitions as _definitions  # noqa: E402
from .definitions import CLIF, GLIF  # noqa: E402
from .neurons import ARLIF, DALIF, LIF, PLIF  # noqa: E402
from .surrogate import ATan, DspikeTanh, Rectangle, Sigmoid, Triangle  # noqa: E402


def __getattr__(name: str):
    """``import_nir`` (:func:`adalif.export.import_nir`: a NIR graph as adalif modules, importing nir
    only when used) and every registered neuron's module class by its class name (``adalif.CLIF``)."""
    if name == "import_nir":  # NIR graphs as adalif modules (imports nir only when used)
        from .export.nir_import import import_nir

        return import_nir
    # Every registered neuron's module by its class name (adalif.CLIF): a neuron added to
    # adalif.definitions is reachable here with no other edit.
    return getattr(_definitions, name)


__all__ = ["ARLIF", "CLIF", "DALIF", "GLIF", "LIF", "PLIF", "ATan", "DspikeTanh", "Rectangle", "Sigmoid", "Triangle",
           "import_nir", "__version__"]
