"""Gradient checks that hold when the gradients are sharded over processes (FSDP2 keeps
them as DTensors, each process holding a part) as well as when they are whole (one process,
DDP). Imported by the Trainer's callbacks (``steering/training/trainer.py``); torch only.
"""

from __future__ import annotations

import torch


def local_part(tensor: torch.Tensor) -> torch.Tensor:
    """This process's part of a gradient: FSDP2 shards them (DTensor), DDP does not."""
    to_local = getattr(tensor, "to_local", None)
    return to_local() if to_local is not None else tensor


def all_finite(grads: list[torch.Tensor]) -> bool:
    """Whether every gradient is finite in every process. Under FSDP each process holds other
    shards, so the answer is agreed over the process group (one all-reduce a step): a process
    that stopped alone would leave the others waiting in their next collective."""
    import torch.distributed as dist

    finite = torch.stack([torch.isfinite(g).all() for g in grads]).all() if grads else None
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        flag = torch.tensor(
            [1 if finite is None or finite else 0],
            device=grads[0].device if grads else "cpu",
            dtype=torch.int32,
        )
        if dist.get_backend() == "gloo":
            flag = flag.cpu()
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())
    return finite is None or bool(finite)
