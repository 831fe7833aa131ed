"""Running a network once under forward hooks, for the analyses and the exports."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Tuple

import torch
from torch import nn

__all__ = ["run_hooked", "evaluating"]


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` with every module in eval mode, and each module's own training flag restored after
    (a batch norm frozen in eval mode inside a model in training mode stays frozen)."""
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        yield model
    finally:
        for m, training in flags:
            m.training = training


def run_hooked(model: nn.Module, x: torch.Tensor, hooks: Iterable[Tuple[nn.Module, Callable]]):
    """``model(x)`` once in eval mode without gradients, with each ``(module, hook)`` registered as
    a forward hook for that call only; the hooks are removed and every module's training flag
    restored after."""
    handles = [module.register_forward_hook(hook) for module, hook in hooks]
    try:
        with evaluating(model), torch.no_grad():
            return model(x)
    finally:
        for h in handles:
            h.remove()
