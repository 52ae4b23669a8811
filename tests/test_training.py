"""train(): the seed fixes everything, adapter initialisation included."""

import torch
from safetensors.torch import load_file

from steering.tasks import get_task
from steering.tasks.files import write_prepared
from steering.tiny import save_tiny_model
from steering.training import TrainSettings, train


def test_same_seed_same_adapter_other_seed_other_adapter(tmp_path):
    save_tiny_model(tmp_path / "m", "llama", hidden_size=32, num_layers=2)
    task = get_task("BoolQ")
    write_prepared(
        task, task.make_splits(task.synthetic(scale=0.02)), tmp_path / "d", {"kind": "synthetic"}
    )

    def run(seed, name):
        torch.manual_seed(1000 + seed * 7 + len(name))  # global RNG state differs on purpose
        train(
            TrainSettings(
                model_name=str(tmp_path / "m"),
                dataset_name="BoolQ",
                data_dir=str(tmp_path / "d"),
                seed=seed,
                max_train_samples=16,
                output_dir=str(tmp_path / name),
                progress=False,
            )
        )
        return load_file(tmp_path / name / "adapter.safetensors")

    a, b, c = run(1, "a"), run(1, "bb"), run(2, "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
