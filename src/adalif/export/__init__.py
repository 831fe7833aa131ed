"""Export of trained networks to other tools: NIR (the Neuromorphic Intermediate Representation)."""

from .nir_graph import to_nir

__all__ = ["to_nir"]
