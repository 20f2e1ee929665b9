"""Rank, world size and device of a training process; collectives that are no-ops alone.

Under `torchrun --nproc_per_node N` every process reads its rank from the environment and
joins one process group (NCCL on CUDA, gloo on the CPU); a plain `python` run is rank 0 of 1.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as tdist

Amp = Callable[[], contextlib.AbstractContextManager[Any]]  # Dist.amp: the precision of a forward


class Dist:
    """Rank, world size and device; collectives are no-ops in a single process."""

    def __init__(self, device_arg: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        cuda = device_arg == "cuda" or (device_arg == "auto" and torch.cuda.is_available())
        if device_arg == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is available")
        if cuda:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            self.device = torch.device("cuda", local)
        else:
            self.device = torch.device("cpu")
        if self.world > 1 and not tdist.is_initialized():
            tdist.init_process_group("nccl" if cuda else "gloo")
            if not cuda:  # ranks share the cores; oversubscribed threads crawl
                torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.world))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def slice(self, batch: int) -> tuple[int, int]:
        """This rank's rows [lo, hi) of the global batch."""
        if batch % self.world:
            raise ValueError(f"--batch {batch} is not divisible by {self.world} processes")
        per = batch // self.world
        return self.rank * per, (self.rank + 1) * per

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            tdist.all_reduce(t)
            t /= self.world
        return t

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            tdist.all_reduce(t)
        return t

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """Concatenate every rank's tensor in rank order (= the global batch order)."""
        if self.world == 1:
            return t
        parts = [torch.empty_like(t) for _ in range(self.world)]
        tdist.all_gather(parts, t.contiguous())
        return torch.cat(parts)

    def broadcast_int(self, value: int) -> int:
        if self.world == 1:
            return value
        t = torch.tensor([value], device=self.device)
        tdist.broadcast(t, 0)
        return int(t.item())

    def amp(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast on CUDA (the reference trains with AMP); fp32 on the CPU."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def finish(self) -> None:
        """Wait for every rank, then leave the process group (nothing to do alone)."""
        if self.world > 1:
            tdist.barrier()
            tdist.destroy_process_group()


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU with its thread count (recorded in checkpoints)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"
