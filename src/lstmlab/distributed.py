"""Data parallel under ``torchrun``: joining the gloo process group, and the collective
decisions every rank must take alike (stop now? the loss averaged over ranks).

Without torchrun (one process) every function is a no-op that returns its input.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_distributed() -> tuple[int, int]:
    """Join the gloo process group when started by torchrun; returns (rank, world_size)."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and not dist.is_initialized():
        dist.init_process_group("gloo")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def agreed(flag: bool, world_size: int) -> bool:
    """`flag` made the same on every rank (True when any rank says True)."""
    if world_size == 1:
        return flag
    tensor = torch.tensor([float(flag)])
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def mean_across_ranks(value: float, world_size: int) -> float:
    """The mean of `value` over the ranks."""
    if world_size == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.item() / world_size
