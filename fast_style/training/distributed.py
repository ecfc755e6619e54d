"""This process's place in a ``torchrun`` job: joining it, the few collectives training needs, leaving it.

Everything that touches :mod:`torch.distributed` is here, so the trainer reads the same with one
process or many: a single process is rank 0 of a world of 1, where every collective is the identity
and nothing is imported or initialised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Distributed:
    """This process's rank in the job (rank 0 of 1 when not launched by torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that logs and writes files."""
        return self.rank == 0

    def local_device(self, device: torch.device) -> torch.device:
        """Under torchrun each process trains on its own GPU (``cuda:LOCAL_RANK``); anything else as given."""
        if self.world > 1 and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` under DistributedDataParallel (gradients averaged across ranks), or itself alone."""
        if self.world == 1:
            return model
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def all_true(self, flag: torch.Tensor) -> torch.Tensor:
        """``flag`` (1.0 or 0.0) made 1.0 only where every rank says 1.0, e.g. that its loss is finite:
        a decision all ranks must share, or one rank would wait for the others forever."""
        if self.world > 1:
            import torch.distributed as dist
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return flag

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean of ``values`` over the ranks (each saw its own slice of the global batch)."""
        if self.world > 1:
            import torch.distributed as dist
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
            values /= self.world
        return values

    def from_main(self, value: torch.Tensor) -> torch.Tensor:
        """Rank 0's ``value`` on every rank, so a decision made from one clock is taken by all."""
        if self.world > 1:
            import torch.distributed as dist
            dist.broadcast(value, src=0)
        return value

    def barrier(self) -> None:
        """Wait until every rank has reached this point."""
        if self.world > 1:
            import torch.distributed as dist
            dist.barrier()


def init_distributed(device_name: str) -> Distributed:
    """Join the torchrun process group if launched under torchrun (gloo on CPU, nccl on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Distributed()
    import torch.distributed as dist

    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    info = Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if use_cuda:
        torch.cuda.set_device(info.local_rank)
    return info


def shutdown() -> None:
    """Leave the torchrun process group, if this process joined one (a no-op otherwise).

    Called once by the command that started training, whether it succeeded or failed, so a rank
    never exits holding the group (PyTorch warns of a leaked group, and NCCL may hang at exit).
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
