"""Errors of the dataset readers: every one names the file and what is wrong with it."""

from __future__ import annotations

import os
from typing import Sequence

from ..errors import DatasetFileError, MissingFileError

__all__ = ["DatasetFileError", "MissingFileError", "missing_files", "dataset_folder"]


def missing_files(dataset: str, root, required: Sequence[str], expected: Sequence[str], source: str) -> None:
    """Raise :class:`MissingFileError` when any of ``required`` (paths under ``root``) is absent, listing
    the layout expected and where the dataset is officially obtained (adalif never downloads)."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise MissingFileError(
            f"{dataset}: folder {root!r} does not exist; expected in it: {', '.join(expected)}. adalif never "
            f"downloads: get {source} and point data.root at it."
        )
    missing = [r for r in required if not os.path.exists(os.path.join(root, r))]
    if missing:
        raise MissingFileError(
            f"{dataset}: {', '.join(os.path.join(root, m) for m in missing)} not found; expected under {root!r}: "
            f"{', '.join(expected)}. adalif never downloads: get {source} and point data.root at it."
        )


def dataset_folder(root, name: str) -> str:
    """``root/name`` when ``root`` is the folder that contains the extracted archive, else ``root``."""
    root = os.fspath(root)
    inner = os.path.join(root, name)
    return inner if os.path.isdir(inner) else root
