"""A process of tests/test_trainer.py's two-process gradient check, in a module that imports
torch and steering.training.gradients alone, so that each spawned process starts in a second
or two."""

import torch


def check_shards(rank: int, store_path: str, out: str) -> None:
    """One of two processes: rank 1's shard of a gradient holds a NaN, rank 0's does not."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    from steering.training.gradients import all_finite, local_part

    dist.init_process_group("gloo", store=dist.FileStore(store_path, 2), rank=rank, world_size=2)
    try:
        mesh = init_device_mesh("cpu", (2,))
        grad = distribute_tensor(torch.tensor([1.0, 2.0, float("nan"), 4.0]), mesh, [Shard(0)])
        local = local_part(grad)  # rank 0: [1, 2]; rank 1: [nan, 4]
        answer = all_finite([local])
        with open(f"{out}.{rank}", "w") as f:
            f.write(f"{local.tolist()} {answer}")
    finally:
        dist.destroy_process_group()
