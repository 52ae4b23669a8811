"""Loading models and tokenizers from directories written by make_tiny_model."""

import pytest
import torch

from steering.architectures import uses_chat_template
from steering.loading.loader import (
    ModelNotFound,
    device_name,
    load_base_model,
    load_tokenizer,
    model_short_name,
    pick_device,
)
from steering.loading.tiny import save_tiny_model


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma", "gpt2"])
def test_tiny_model_directory_loads_and_generates(arch, tmp_path):
    path = save_tiny_model(tmp_path / f"tiny-{arch}", arch, hidden_size=32, num_layers=2)
    tokenizer = load_tokenizer(str(path))
    model = load_base_model(str(path), dtype="bfloat16", device="cpu")
    assert model.dtype == torch.bfloat16 and not model.training
    assert model.config.model_type == arch and tokenizer.pad_token_id == 0
    expected_attn = "eager" if uses_chat_template(arch) else "sdpa"
    assert model.config._attn_implementation == expected_attn  # Gemma: eager, as the protocol says
    ids = tokenizer("Is it red?", return_tensors="pt").input_ids
    out = model.generate(input_ids=ids, max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert out.shape[1] <= ids.shape[1] + 3


def test_missing_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFound, match="not a local directory and the hub is disabled"):
        load_base_model(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFound, match="exists but is not a Hugging Face model directory"):
        load_tokenizer(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        load_base_model(str(tmp_path), dtype="fp8")


def test_names_and_devices():
    assert model_short_name("meta-llama/Meta-Llama-3-8B") == "Meta-Llama-3-8B"
    assert model_short_name("results/models/tiny-llama/") == "tiny-llama"
    assert pick_device("cpu").type == "cpu"
    assert pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize(
    "device, local_rank, gpus, world, expected",
    [
        (None, None, 0, 1, "cpu"),  # no GPU: the CPU
        (None, None, 1, 1, "cuda:0"),
        (None, "1", 2, 2, "cuda:1"),  # torchrun: this process's GPU
        ("cuda", None, 8, 1, "cuda:0"),
        ("cuda", "3", 8, 4, "cuda:3"),  # the pipeline passes --device cuda to every rank
        ("cuda", "0", 8, 4, "cuda:0"),
        ("cuda:1", None, 2, 1, "cuda:1"),  # one process, the GPU asked for
        ("cuda:2", "2", 4, 4, "cuda:2"),  # a rank naming its own GPU
        ("cpu", "1", 8, 2, "cpu"),  # gloo on CPU, whatever GPUs there are
        ("cpu", None, 0, 1, "cpu"),
    ],
)
def test_the_device_of_a_process(device, local_rank, gpus, world, expected):
    assert device_name(device, local_rank, gpus, world) == expected


@pytest.mark.parametrize(
    "device, local_rank, gpus, world, message",
    [
        ("cuda", None, 0, 1, "--device cuda, but no CUDA GPU is visible"),
        (None, "1", 1, 2, "LOCAL_RANK=1, and 1 GPU(s) are visible"),  # rank 1 on a 1-GPU box
        ("cuda", "1", 1, 2, "start one process per GPU"),
        ("cuda:0", "1", 2, 2, "under torchrun puts every process on one GPU"),
        ("cuda:1", None, 1, 1, "--device cuda:1, and 1 GPU(s) are visible"),
        ("cuda:x", None, 1, 1, "give cuda, cuda:<index> or cpu"),
    ],
)
def test_a_device_that_cannot_be_had_is_refused_with_the_reason(
    device, local_rank, gpus, world, message
):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        device_name(device, local_rank, gpus, world)


def test_pick_device_follows_local_rank(monkeypatch):
    """On this machine: torchrun's LOCAL_RANK decides the GPU, or is refused without one."""
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert pick_device("cpu").type == "cpu"
    if torch.cuda.device_count() >= 2:
        assert pick_device("cuda") == torch.device("cuda:1")
    else:
        with pytest.raises(ValueError, match="LOCAL_RANK=1|no CUDA GPU is visible"):
            pick_device("cuda")
