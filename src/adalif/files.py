"""Writing files so that an interrupted write never leaves a half-written one."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

__all__ = ["replaced_atomically"]


@contextlib.contextmanager
def replaced_atomically(path: str) -> Iterator[str]:
    """Yield a temporary path next to ``path`` to write; on success it is renamed onto ``path``
    (an atomic replace), on any error removed, so ``path`` is either the old file or the new one."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
