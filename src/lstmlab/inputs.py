"""From what a user passes to what an engine runs, and back.

Engines see one layout: a padded, time-major batch (T, B, I) in the caller's batch
order, with optional valid lengths. This module converts the four accepted layouts
((T, B, I), batch_first (B, T, I), unbatched (T, I), PackedSequence), checks them
with errors that say what was expected and what was given, and converts results back.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence


class ParsedInput(NamedTuple):
    x: Tensor  # (T, B, I) time-major, padded
    lengths: Tensor | None  # (B,) int64 on x's device, for packed input
    packed: PackedSequence | None  # the caller's PackedSequence, to pack the output alike
    unbatched: bool


def check_packed(packed: PackedSequence) -> None:
    """A PackedSequence whose batch_sizes fit its data (hand-built ones may not)."""
    sizes = packed.batch_sizes
    if packed.data.dim() != 2:
        raise ValueError(f"PackedSequence data: expected 2 dims (N, input_size), got shape {tuple(packed.data.shape)}")
    if sizes.dim() != 1 or sizes.numel() == 0 or sizes.dtype != torch.int64:
        raise ValueError(f"PackedSequence batch_sizes: expected a non-empty 1-D int64 tensor, got {sizes!r}")
    if bool((sizes <= 0).any()) or bool((sizes[1:] > sizes[:-1]).any()):
        raise ValueError(f"PackedSequence batch_sizes: expected positive, non-increasing sizes, got {sizes.tolist()}")
    if int(sizes.sum()) != packed.data.shape[0]:
        raise ValueError(
            f"PackedSequence batch_sizes: expected them to sum to the {packed.data.shape[0]} rows of data, "
            f"got sum {int(sizes.sum())}"
        )
    if packed.sorted_indices is not None and packed.sorted_indices.numel() != int(sizes[0]):
        raise ValueError(
            f"PackedSequence sorted_indices: expected {int(sizes[0])} entries (the batch size), "
            f"got {packed.sorted_indices.numel()}"
        )


class ShapeError(ValueError, RuntimeError):
    """A tensor of the wrong shape. Also a RuntimeError: what torch.nn.LSTM raises for a
    wrong input size or state shape, so code that catches torch's type catches ours."""


class DtypeError(TypeError, ValueError, RuntimeError):
    """A tensor of the wrong dtype. Also a ValueError (torch.nn.LSTM's type for the input's
    dtype) and a RuntimeError (its type for the state's dtype)."""


def parse_input(input, batch_first: bool, input_size: int) -> ParsedInput:
    """Accept (T, B, I) / (B, T, I) / (T, I) / PackedSequence; return the engine layout."""
    if isinstance(input, PackedSequence):
        check_packed(input)
        check_features(input.data, input_size)
        padded, lengths = pad_packed_sequence(input)  # (T, B, I), original batch order
        return ParsedInput(padded, lengths.to(padded.device), input, False)
    if not isinstance(input, Tensor):
        raise TypeError(f"input: expected a Tensor or PackedSequence, got {type(input).__name__}")
    if input.dim() not in (2, 3):
        raise ValueError(
            f"input: expected 3 dims {'(B, T, I)' if batch_first else '(T, B, I)'} or 2 dims (T, I) "
            f"for unbatched input, got {input.dim()} dims with shape {tuple(input.shape)}"
        )
    check_features(input, input_size)
    if input.dim() == 2:
        return ParsedInput(input.unsqueeze(1), None, None, True)
    return ParsedInput(input.transpose(0, 1) if batch_first else input, None, None, False)


def check_features(x: Tensor, input_size: int) -> None:
    if x.shape[-1] != input_size:
        raise ShapeError(
            f"input: expected input_size={input_size} features in the last dim, got {x.shape[-1]} "
            f"(shape {tuple(x.shape)})"
        )


def from_autocast(tensor: Tensor, reference: Tensor) -> Tensor:
    """`tensor` in the weights' dtype where it is in the dtype of an enclosing torch.autocast
    (e.g. the states the native engine returned under autocast, carried into the next
    batch); otherwise unchanged, for `check_like` to judge."""
    device = reference.device.type
    if (tensor.dtype != reference.dtype and tensor.is_floating_point() and torch.is_autocast_enabled(device)
            and tensor.dtype == torch.get_autocast_dtype(device)):
        return tensor.to(reference.dtype)
    return tensor


def check_like(name: str, tensor: Tensor, reference: Tensor) -> None:
    """Same dtype (DtypeError, a TypeError) and device (ValueError) as the weights."""
    if tensor.dtype != reference.dtype:
        raise DtypeError(f"{name}: expected dtype {reference.dtype} (the weights' dtype), got {tensor.dtype}")
    if tensor.device != reference.device:
        raise ValueError(f"{name}: expected device {reference.device} (the weights' device), got {tensor.device}")


def initial_state(hx, batch: int, shapes: tuple[tuple[int, int], tuple[int, int]], unbatched: bool,
                  like: Tensor) -> tuple[Tensor, Tensor]:
    """(h0, c0) as (L*D, B, P) and (L*D, B, H): zeros when hx is None, else checked.

    shapes: ((L*D, P), (L*D, H)). Unbatched input takes hx as (L*D, P) and (L*D, H).
    """
    if hx is None:
        return tuple(like.new_zeros(rows, batch, width) for rows, width in shapes)
    if not (isinstance(hx, (tuple, list)) and len(hx) == 2 and all(isinstance(t, Tensor) for t in hx)):
        raise TypeError(f"hx: expected a tuple (h_0, c_0) of two Tensors, got {type(hx).__name__}")
    states = []
    for name, tensor, (rows, width) in zip(("h_0", "c_0"), hx, shapes):
        expected = (rows, width) if unbatched else (rows, batch, width)
        if tuple(tensor.shape) != expected:
            raise ShapeError(f"{name}: expected shape {expected}, got {tuple(tensor.shape)}")
        tensor = from_autocast(tensor, like)
        check_like(name, tensor, like)
        states.append(tensor.unsqueeze(1) if unbatched else tensor)
    return tuple(states)


def pack_like(padded: Tensor, packed: PackedSequence) -> PackedSequence:
    """Pack a padded (T, B, F) tensor (original batch order) exactly as `packed` is packed."""
    sizes = packed.batch_sizes
    order = packed.sorted_indices
    if order is None:
        order = torch.arange(int(sizes[0]), device=padded.device)
    time_index = torch.repeat_interleave(torch.arange(len(sizes)), sizes).to(padded.device)
    batch_index = torch.cat([order[:n] for n in sizes.tolist()])
    return PackedSequence(padded[time_index, batch_index], sizes, packed.sorted_indices, packed.unsorted_indices)


def valid_mask(lengths: Tensor, steps: int) -> Tensor:
    """(T, B) bool: True where step t is within sequence b's length."""
    return torch.arange(steps, device=lengths.device)[:, None] < lengths[None, :]
