"""Exchange of trained networks with other tools through NIR (the Neuromorphic Intermediate
Representation): export (:func:`to_nir`) and import (:func:`import_nir`)."""

from .nir_graph import make_portable, to_nir
from .nir_import import import_nir, load_imported

__all__ = ["to_nir", "make_portable", "import_nir", "load_imported"]
