"""Loading models and tokenizers from directories written by make_tiny_model."""

import pytest
import torch

from steering.data import uses_chat_template
from steering.loader import (
    ModelNotFound,
    load_base_model,
    load_tokenizer,
    model_short_name,
    pick_device,
)
from steering.tiny import save_tiny_model


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
