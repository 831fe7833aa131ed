"""Adapters that let adalif neurons live inside other frameworks' code (none of them is imported)."""
