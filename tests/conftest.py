"""Shared test set-up: offline hub, tiny models and the project-built tokenizer."""

import os

# Before transformers/datasets are imported: a hub lookup without these hangs for ~47 s.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `make test` runs two pytest-xdist workers on the two cores: one torch thread each (and in the
# jobs they start), so the workers do not fight over the cores with spinning threads.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

# What every process a CPU test starts gets: no GPU, whatever the machine has. Such tests
# compare numbers made on the CPU (gloo for the torchrun ones), and on a GPU machine their
# processes would otherwise take GPUs they do not expect (rank 1 on a one-GPU machine fails).
# Tests meant for GPUs are marked `gpu` (one) or `gpus(n)` and skip with the reason when fewer
# are visible (docs/development.md says which tests run where).
CPU_ONLY = {"CUDA_VISIBLE_DEVICES": ""}


def cpu_env(**extra: str) -> dict[str, str]:
    """The environment of a process a CPU test starts: this one's, the hub off, no GPU."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", **CPU_ONLY, **extra}


from steering.architectures import decoder_layers  # noqa: E402
from steering.loading.tiny import build_tokenizer  # noqa: E402

# The modules that take a minute or more (`pytest --durations=30`, docs/development.md), longest
# first. `make test` hands whole modules to its two workers in the order collected, so these
# start at once and the short ones fill in around them, instead of the Slurm cluster's two
# minutes starting last while the other worker waits.
LONGEST_FIRST = (  # worker-seconds at b001f9d: 320, 230, 204, 184, 144, 83, 80, 67, 67, 64, 59, 44
    "test_pipeline.py",
    "test_real_model.py",
    "test_benchmarks.py",
    "test_slurm.py",
    "test_reliability.py",
    "test_methods.py",
    "test_scripts.py",
    "test_analysis.py",
    "test_lm_eval_pipeline.py",
    "test_distributed.py",
    "test_resume.py",
    "test_grpo.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep order
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for item in items:
        needed = item.get_closest_marker("gpus")
        wanted = needed.args[0] if needed else 1 if "gpu" in item.keywords else 0
        if wanted > visible:
            reason = f"needs {wanted} CUDA GPU(s); {visible} visible"
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def tokenizer():
    return build_tokenizer()


@pytest.fixture
def input_ids():
    g = torch.Generator().manual_seed(1)
    return torch.randint(3, 500, (2, 9), generator=g)


def randomize(steered, scale: float = 0.5, seed: int = 0) -> None:
    """Give every steering parameter random non-zero values (fresh ones are a no-op)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in steered.adapters.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)


def official_state(base, sites, kind="adapter", rank=8, seed=0):
    """A state dict laid out as the official Trainer saves it: base weights + steering."""
    g = torch.Generator().manual_seed(seed)
    state = {f"model.{k}": v.clone() for k, v in base.state_dict().items()}
    hidden = base.config.hidden_size
    for i in range(len(decoder_layers(base))):
        for site in sites:
            if kind == "adapter":
                state[f"adapters.layer{i}_{site}.down.weight"] = torch.randn(
                    rank, hidden, generator=g
                )
                state[f"adapters.layer{i}_{site}.up.weight"] = torch.randn(
                    hidden, rank, generator=g
                )
            else:
                state[f"deltas.layer{i}_{site}"] = torch.randn(hidden, generator=g)
    return state
