"""Steering on a base model that accelerate offloads: a ``device_map`` with "disk" entries
(weights stay in the safetensors files, on ``meta`` in the model, and are brought in by a
hook when their block runs), a block split between disk and CPU, or CPU offload (weights kept
in a CPU state dict, as "cpu" entries beside a GPU do). Every adapter, vector and LoReFT
intervention must live where its block's output is computed (never on ``meta``, where loading
a checkpoint copies nothing), and the outputs must equal those of the same model loaded whole.

On a CPU-only machine the main device is the CPU, so only "disk" entries offload there; "cpu"
entries beside a GPU are emulated with ``accelerate.cpu_offload`` and run for real by the
``gpu`` test.
"""

import shutil

import accelerate
import pytest
import torch
from accelerate.hooks import AlignDevicesHook, ModelHook, SequentialHook
from torch import nn
from transformers import AutoModelForCausalLM

from steering.architectures import decoder_layers
from steering.config import SteeringConfig
from steering.evaluation.generation import greedy_generate
from steering.loading.loader import load_base_model
from steering.loading.tiny import save_tiny_model
from steering.methods.reft.model import ReftModel
from steering.model import SteeredModel, layer_dtype_device
from tests.conftest import randomize

_REST = {"model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.norm": "cpu"}
_REST["lm_head"] = "cpu"
_LAYER0_PARTS = ("self_attn", "mlp", "input_layernorm", "post_attention_layernorm")
MAPS = {
    "layer1_on_disk": {**_REST, "model.layers.0": "cpu", "model.layers.1": "disk"},
    # the embedding too: token ids must not be sent to its weight's device (meta)
    "everything_on_disk": {"model": "disk", "lm_head": "disk"},
    # block 0 split: it has no hook itself, only its parts have, and its first weight is meta
    "attention_on_disk": {
        **_REST,
        **{f"model.layers.0.{p}": "disk" if p == "self_attn" else "cpu" for p in _LAYER0_PARTS},
        "model.layers.1": "disk",
    },
}
CONFIGS = {
    "adapter": SteeringConfig(),
    "vector": SteeringConfig(kind="vector"),
    "adapter_attn_mlp_last_token": SteeringConfig(sites=("attn", "mlp"), positions="last"),
}
PROMPTS = [[5, 17, 99, 240, 7], [301, 12, 8]]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("offload") / "m", "llama", 32, 2)


def whole(model_dir):
    return AutoModelForCausalLM.from_pretrained(model_dir).eval()


def offloaded(model_dir, how: str, folder):
    """The model loaded with the device map ``how``, or whole and then CPU-offloaded."""
    if how == "cpu_offload":
        model = whole(model_dir)
        accelerate.cpu_offload(model, execution_device=torch.device("cpu"))
    else:
        model = AutoModelForCausalLM.from_pretrained(
            model_dir, device_map=MAPS[how], offload_folder=str(folder)
        ).eval()
    assert any(p.device.type == "meta" for p in decoder_layers(model)[1].parameters())
    return model


def check_placed(params, device="cpu"):
    types = {p.device.type for p in params}
    assert types == {device}, f"steering parameters on {types}, not on {device}"


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits


def continuations(model):
    """Greedy continuations of PROMPTS, batched and left-padded as evaluation decodes."""
    return greedy_generate(model, PROMPTS, 6, pad_token_id=0, eos_token_id=[], progress=False)


def check_same(model, reference, ids):
    torch.testing.assert_close(logits(model, ids), logits(reference, ids))
    assert continuations(model).tokens == continuations(reference).tokens


def test_placement_comes_from_the_hook_of_a_module_or_its_parts():
    with torch.device("meta"):
        block = nn.Sequential(nn.Linear(4, 4, dtype=torch.bfloat16), nn.Linear(4, 4))
    assert layer_dtype_device(block) == (torch.bfloat16, torch.device("meta"))  # no hook: as built
    # what accelerate leaves on a module given a second hook (init_hook would need weights)
    block[1]._hf_hook = SequentialHook(ModelHook(), AlignDevicesHook(execution_device="cpu"))
    assert layer_dtype_device(block) == (torch.bfloat16, torch.device("cpu"))


@pytest.mark.parametrize("how", [*MAPS, "cpu_offload"])
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_steering_modules_run_where_their_block_runs(model_dir, tmp_path, input_ids, how, config):
    reference = SteeredModel(whole(model_dir), config)
    randomize(reference, seed=3)
    steered = SteeredModel(offloaded(model_dir, how, tmp_path), config)
    check_placed(steered.adapters.parameters())
    randomize(steered, seed=3)
    check_same(steered, reference, input_ids)
    with steered.disabled():  # and it steers: the plain model's logits differ
        assert not torch.allclose(logits(steered, input_ids), logits(reference, input_ids))


@pytest.mark.parametrize("how", ["everything_on_disk", "cpu_offload"])
def test_checkpoint_of_a_whole_model_loads_into_an_offloaded_one(
    model_dir, tmp_path, input_ids, how
):
    reference = SteeredModel(whole(model_dir), SteeringConfig(rank=4))
    randomize(reference, seed=5)
    reference.save_pretrained(tmp_path / "ckpt")
    base = offloaded(model_dir, how, tmp_path / "off")
    steered = SteeredModel.from_pretrained(base, tmp_path / "ckpt")
    check_placed(steered.adapters.parameters())
    check_same(steered, reference, input_ids)
    # the state-dict route (HF Trainer's resume) fills them the same way
    again = SteeredModel(offloaded(model_dir, how, tmp_path / "off2"), SteeringConfig(rank=4))
    again.load_state_dict(reference.state_dict())
    torch.testing.assert_close(logits(again, input_ids), logits(reference, input_ids))


@pytest.mark.parametrize("how", ["layer1_on_disk", "everything_on_disk", "cpu_offload"])
def test_reft_interventions_run_where_their_block_runs(model_dir, tmp_path, input_ids, how):
    torch.manual_seed(0)
    reference = ReftModel(whole(model_dir), rank=4, first_n=1, last_n=1)
    with torch.no_grad():
        for p in reference.interventions.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    reference.save(tmp_path / "reft")
    reft = ReftModel.load(offloaded(model_dir, how, tmp_path / "off"), tmp_path / "reft")
    check_placed(reft.interventions.parameters())
    check_same(reft, reference, input_ids)


def test_load_base_model_offloads_to_the_given_folder_a_model_larger_than_memory(
    model_dir, tmp_path, input_ids, monkeypatch
):
    """A "sequential" map on a machine whose memory holds about one block: the rest goes to
    disk. Weights in safetensors files are read where they lie; others (a ``.bin``
    checkpoint, or weights converted on loading) must be written to ``offload_folder``."""
    tia = pytest.importorskip("transformers.integrations.accelerate")
    if not hasattr(tia, "accelerate_max_memory"):
        pytest.skip("this transformers computes device maps differently")
    layer_bytes = sum(p.numel() * 4 for p in decoder_layers(whole(model_dir))[0].parameters())
    monkeypatch.setattr(tia, "accelerate_max_memory", lambda _=None: {"cpu": 3 * layer_bytes})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy(model_dir / "config.json", bin_dir)
    torch.save(whole(model_dir).state_dict(), bin_dir / "pytorch_model.bin")
    with pytest.raises(ValueError, match="offload_folder"):
        load_base_model(str(bin_dir), device_map="sequential")
    with pytest.raises(ValueError, match="--device-map"):
        load_base_model(str(bin_dir), offload_folder=str(tmp_path / "off"))

    base = load_base_model(str(bin_dir), device_map="sequential", offload_folder=tmp_path / "off")
    assert any(p.device.type == "meta" for p in base.parameters())
    assert any(tmp_path.joinpath("off").iterdir())
    reference = SteeredModel(whole(model_dir))
    randomize(reference, seed=7)
    steered = SteeredModel(base)
    randomize(steered, seed=7)
    check_placed(steered.adapters.parameters())
    check_same(steered, reference, input_ids)


@pytest.mark.gpu
def test_cpu_and_disk_entries_beside_a_gpu(model_dir, tmp_path, input_ids):
    """GPU 0 runs everything; the "cpu" and "disk" blocks are brought to it by their hooks."""
    device_map = {**dict.fromkeys(_REST, 0), "model.layers.0": "cpu", "model.layers.1": "disk"}

    def load():
        base = AutoModelForCausalLM.from_pretrained(
            model_dir, device_map=device_map, offload_folder=str(tmp_path)
        )
        assert {p.device.type for p in base.model.layers.parameters()} == {"meta"}
        return base.eval()

    check_placed(ReftModel(load(), rank=4).interventions.parameters(), "cuda")
    reference = SteeredModel(whole(model_dir).to("cuda:0"))
    randomize(reference, seed=9)
    steered = SteeredModel(load())
    randomize(steered, seed=9)
    check_placed(steered.adapters.parameters(), "cuda")
    check_same(steered, reference, input_ids.to("cuda:0"))
