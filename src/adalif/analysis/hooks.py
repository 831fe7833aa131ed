"""Running a network once under forward hooks, for the analyses and the exports."""

from __future__ import annotations

from typing import Callable, Iterable, Tuple

import torch
from torch import nn

__all__ = ["run_hooked"]


def run_hooked(model: nn.Module, x: torch.Tensor, hooks: Iterable[Tuple[nn.Module, Callable]]):
    """``model(x)`` once in eval mode without gradients, with each ``(module, hook)`` registered as
    a forward hook for that call only; the hooks are removed and the training mode restored after."""
    handles = [module.register_forward_hook(hook) for module, hook in hooks]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            return model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
