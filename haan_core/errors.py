"""Input checks shared by the whole package.

Every public function validates what it is given and raises :class:`HAANInputError`
(a ``ValueError``) with a message that says what is wrong and how to fix it, instead of
letting a shape error surface from deep inside PyTorch.
"""
from __future__ import annotations

import torch


class HAANInputError(ValueError):
    """Bad input to a haan_core function: the message says what is wrong and what to do."""


def check_tensor(x, name: str, ndim: int, *, floating: bool = True) -> torch.Tensor:
    """Return ``x`` if it is a tensor of ``ndim`` dimensions (and finite floats)."""
    if not isinstance(x, torch.Tensor):
        raise HAANInputError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != ndim:
        raise HAANInputError(
            f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if floating:
        if not x.is_floating_point():
            raise HAANInputError(f"{name} must be a float tensor, got dtype {x.dtype}")
        if not torch.isfinite(x).all():
            raise HAANInputError(
                f"{name} contains NaN or infinite values: check the features that produced it")
    return x


def check_nonempty(x: torch.Tensor, name: str, dim: int = 0) -> None:
    if x.shape[dim] == 0:
        raise HAANInputError(f"{name} is empty (size 0 along dimension {dim}): "
                             "a batch needs at least one item")


def check_labels(labels, name: str, expected: int) -> torch.Tensor:
    """Labels are a 1-d integer tensor with one entry per item."""
    if not isinstance(labels, torch.Tensor):
        raise HAANInputError(f"{name} must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dim() != 1:
        raise HAANInputError(f"{name} must be 1-d, got shape {tuple(labels.shape)}")
    if labels.shape[0] != expected:
        raise HAANInputError(
            f"{name} has {labels.shape[0]} entries but there are {expected} items: "
            "give one label per row (images) or column (texts) of the similarity matrix")
    if labels.is_floating_point() or labels.is_complex():
        raise HAANInputError(f"{name} must hold integer class ids, got dtype {labels.dtype}")
    return labels
