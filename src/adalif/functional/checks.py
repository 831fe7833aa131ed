"""Validation at the public boundary (functional entry points and module calls).

Each check raises with the argument's name, the value given and what was expected, so that a
user never meets a deep broadcasting traceback from inside a time loop.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch


def check_sequence(x: torch.Tensor, name: str = "x", min_dim: int = 2) -> None:
    """``x`` must be a non-empty floating tensor of shape ``[T, B, ...]``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape [T, B, ...], got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < min_dim:
        what = "[T, B, ...]" if min_dim == 2 else "[B, ...]"
        raise ValueError(
            f"{name}: expected at least {min_dim} dimensions {what} (time first), got shape {tuple(x.shape)}"
        )
    if x.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty tensor, got shape {tuple(x.shape)}")


def check_state(value: torch.Tensor, shape: Sequence[int], name: str) -> None:
    """A state tensor must have the shape of one time step of the input."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor of shape {tuple(shape)}, got {type(value).__name__}")
    if tuple(value.shape) != tuple(shape):
        raise ValueError(
            f"{name}: shape {tuple(value.shape)} does not match one step of the input, expected {tuple(shape)}"
        )


def check_positive(value: float, name: str) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: expected a positive finite number, got {value!r}")
    return float(value)


def check_finite(value: float, name: str) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value)):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


def check_choice(value: str, choices: Sequence[str], name: str) -> str:
    if value not in choices:
        raise ValueError(f"{name}: unknown value {value!r}; expected one of {list(choices)}")
    return value


class Choice:
    """A validated attribute: assigning a value outside ``choices`` raises, naming ``key``
    (``TimeBatchNorm.mode``, a SpikingJelly-style node's ``step_mode``)."""

    def __init__(self, choices: Sequence[str], key: str) -> None:
        self.choices, self.key = tuple(choices), key

    def __set_name__(self, owner, name: str) -> None:
        self.attr = "_" + name

    def __get__(self, obj, objtype=None):
        return self if obj is None else getattr(obj, self.attr)

    def __set__(self, obj, value) -> None:
        if value not in self.choices:
            raise ValueError(f"{self.key}: got {value!r}, expected one of {list(self.choices)}")
        object.__setattr__(obj, self.attr, value)
