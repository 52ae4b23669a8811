"""The memory plan (steering/training/memory.py) and the budget (steering/pipeline/budget.py,
scripts/plan.py):
parameter and trainable counts from a config alone against the built models, the refusal of
a job that cannot fit with the numbers and the fix, host memory for the rules, the plan."""

import json
import subprocess
import sys

import pytest

from steering.config import SteeringConfig
from steering.loading.tiny import tiny_model
from steering.methods import METHODS
from steering.pipeline import jobs
from steering.training import memory
from tests.conftest import cpu_env
from tests.workflow import ROOT

# Published shapes (their config.json's numbers)
LLAMA_8B = {
    "model_type": "llama",
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 128256,
    "tie_word_embeddings": False,
}


@pytest.mark.parametrize(
    "arch",
    ["llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3", "gpt2"]
    + ["gpt_neox", "opt"],
)
def test_parameters_from_the_config_alone_are_within_one_percent(arch):
    model = tiny_model(arch, num_layers=2)
    exact = sum(p.numel() for p in model.parameters())
    estimated = memory.shape_of(model.config.to_dict()).parameters()
    assert abs(estimated - exact) <= 0.01 * exact, (estimated, exact)


CASES = [
    ("steering", {}, SteeringConfig()),
    ("steering", {}, SteeringConfig(kind="vector", sites=("attn", "mlp"))),
    ("steering", {}, SteeringConfig(rank=2, layers=(0,))),
    ("lora", {"rank": 4}, None),
    ("reft", {"rank": 4}, None),
    ("joint", {"lora_rank": 2}, SteeringConfig(rank=4)),
    ("full", {}, None),
]


@pytest.mark.parametrize("name, options, steering", CASES)
def test_each_method_counts_its_trainable_parameters_from_the_shape(name, options, steering):
    method = METHODS[name]
    options = method.check_options(options)
    model = method.build(tiny_model("llama", num_layers=2), options, steering)
    shape = memory.shape_of(tiny_model("llama", num_layers=2).config.to_dict())
    assert method.estimate(shape, options, steering) == method.trainable_parameters(model)


def _settings(method="steering", precision="bf16", bs=8, sharding="none", options=None):
    from types import SimpleNamespace

    m = METHODS[method]
    steering = SteeringConfig() if method in ("steering", "joint") else None
    opts = m.check_options(options or {})
    return SimpleNamespace(
        method=method,
        options=opts,
        steering=steering,
        precision=precision,
        bs=bs,
        sharding=sharding,
    )


def test_full_fine_tuning_of_an_8b_model_is_refused_with_the_numbers_and_the_fix():
    shape = memory.shape_of(LLAMA_8B)
    assert 8.0e9 < shape.parameters() < 8.1e9  # Llama-3.1-8B: 8.03 B
    capacity = 80 * memory.GIB
    with pytest.raises(ValueError) as e:
        memory.refuse_if_too_big(_settings("full"), shape, 256, 1, capacity)
    text = str(e.value)
    assert text.startswith(
        "training full on llama of 8.0 B parameters under --precision bf16, batch 8 x 256"
    )
    assert "per GPU (weights 29.9, trainable states 89.7," in text
    assert "the GPU has 80.0 GiB" in text
    n = int(text.split("set gpus_per_train: ")[1].split()[0])
    assert n in (2, 4, 8) and "sharding: fsdp" in text
    sharded = memory.for_training(_settings("full", sharding="fsdp"), shape, 256, n)
    assert sharded.total <= capacity  # the fix it names fits
    fits = memory.refuse_if_too_big(_settings("steering"), shape, 256, 1, capacity)
    assert fits.total <= capacity and fits.trainable_states == 16 * 2 * 8 * 4096 * 32
    with pytest.raises(ValueError, match="split the batch: bs 32 and grad_accum 4 "):
        memory.refuse_if_too_big(_settings("steering", "fp32", bs=64), shape, 512, 1, capacity)


def test_a_grpo_job_is_planned_by_its_scoring_pass_and_refused_with_its_fix():
    """GRPO's peak is its scoring pass over prompt and completion: a supervised step's
    activations plus the full logits and the completions' float32 log-softmax; the rollouts'
    KV cache of bs x 4 rows stays below it. A job that cannot fit is refused with the fix."""
    from steering.training.grpo_settings import GRPOSettings

    shape = memory.shape_of(LLAMA_8B)
    for g in (GRPOSettings(), GRPOSettings(max_prompt_length=64, max_completion_length=8)):
        tokens = g.max_prompt_length + g.max_completion_length
        found = memory.for_training(_settings("steering", bs=8), shape, 256, 1, grpo=g)
        step = memory.for_training(_settings("steering", bs=8), shape, tokens, 1)
        assert (found.weights, found.activations) == (step.weights, step.activations)
        completion_logits = 8 * g.max_completion_length * shape.vocab * 12
        assert found.logits == 8 * tokens * shape.vocab * 2 + completion_logits
        rollout_cache = 8 * 4 * tokens * shape.layers * 2 * shape.kv * 2
        assert rollout_cache < found.activations
    with pytest.raises(ValueError) as e:
        big = _settings("steering", bs=64)
        memory.refuse_if_too_big(big, shape, 256, 1, 80 * memory.GIB, grpo=GRPOSettings())
    text = str(e.value)
    assert text.startswith("GRPO training steering on llama of 8.0 B parameters")
    assert "completions of 1024 tokens" in text and "lower --bs" in text


def test_the_plan_gives_a_grpo_variant_its_grpo_estimate():
    import copy
    from dataclasses import replace

    from steering.pipeline import budget, grid_config
    from steering.tasks import get_task

    config = grid_config.read_yaml(ROOT / "config/paper.yaml")
    config["variants"]["rl"] = {"objective": "grpo", "grpo": {"num_generations": 4}}
    grid_config.check(config, copy.deepcopy(config), schema=ROOT / "config/schema.yaml")
    grid = jobs.grid(config)
    model = next(iter(config["models"]))
    shape = budget.model_shape(config, model)
    (job,) = budget.train_jobs(grid, model, shape, ["rl"], "BoolQ")
    assert job.settings.grpo.max_completion_length == 10  # BoolQ's new tokens
    assert job.estimate == memory.for_training(job.settings, shape, 0, 1, grpo=job.settings.grpo)
    # its GPU-hours: max_steps of rollouts and scoring, not a supervised epoch
    rows = {r.variant: r for r in budget.plan(config, budget.Assumptions()) if r.model == model}
    g, a = job.settings.grpo, budget.Assumptions()
    one = budget.grpo_hours(shape, False, get_task("BoolQ"), g, job.settings.bs, 1, "bf16", a)
    assert one > 0 and budget.grpo_hours(
        shape, False, get_task("BoolQ"), replace(g, max_steps=2 * g.max_steps), 8, 1, "bf16", a
    ) == pytest.approx(2 * one)
    assert rows["rl"].gpu_hours != rows["silu"].gpu_hours


def test_training_records_its_estimate(tmp_path):
    from steering.loading.tiny import save_tiny_model
    from steering.tasks import get_task
    from steering.tasks.files import write_prepared
    from steering.training.run import TrainSettings, train

    save_tiny_model(tmp_path / "m", "llama", hidden_size=32, num_layers=2)
    task = get_task("BoolQ")
    write_prepared(task, task.make_splits(task.synthetic(scale=0.02)), tmp_path / "d", {"k": 1})
    summary = train(
        TrainSettings(
            model_name=str(tmp_path / "m"),
            dataset_name="BoolQ",
            data_dir=str(tmp_path / "d"),
            max_train_samples=16,
            output_dir=str(tmp_path / "ckpt"),
            progress=False,
        )
    )
    estimate = json.loads((tmp_path / "ckpt/training.json").read_text())["memory_estimate"]
    assert estimate == summary["memory_estimate"]
    assert estimate["trainable_states"] == 16 * summary["trainable_parameters"]
    assert (
        estimate["weights"]
        == 4 * memory.shape_of(json.loads((tmp_path / "m/config.json").read_text())).parameters()
    )


def test_the_rules_host_memory_follows_the_plan(tmp_path):
    model = tmp_path / "big"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(LLAMA_8B))
    config = {
        "models": {"big": {"name": str(model)}, "hub": {"name": "org/not-cached"}},
        "training": {"gpus_per_train": 4, "dtype": "bfloat16"},
    }
    weights = memory.shape_of(LLAMA_8B).parameters() * 2
    expected = 4 * (weights + memory.HOST_RUNTIME)
    assert jobs.train_mem_mb(config, "big", "silu") == -(-expected // 10**9) * 1000
    assert jobs.eval_mem_mb(config, "big") < jobs.train_mem_mb(config, "big", "silu")
    assert jobs.train_mem_mb(config, "hub", "silu") == jobs.DEFAULT_MEM_MB  # unknown
    config["models"]["big"]["variants"] = {"full": {"gpus_per_train": 2}}  # its own GPUs
    assert jobs.train_mem_mb(config, "big", "full@lr=1e-05") == -(-expected // 2 // 10**9) * 1000


def test_plan_prints_every_model_and_variant_with_its_cost(tmp_path):
    import yaml

    model = tmp_path / "llama-8b"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(LLAMA_8B))
    config = {
        "models": {"big": {"name": str(model)}, "tiny": {"tiny": {}}},
        "datasets": {"BoolQ": {}, "GSM8K": {}},
        "variants": {
            "base": {"method": "base"},
            "silu": {"sweep": {"lr": [0.001, 0.002]}},
            "full": {"method": "full"},
        },
        "seeds": [0, 1, 2],
        "training": {"dtype": "bfloat16"},
    }
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [sys.executable, "scripts/plan.py", "--configfile", str(tmp_path / "grid.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    lines = {tuple(line.split()[:2]): line.split() for line in done.stdout.splitlines() if line}
    silu = lines["big", "silu"]
    assert silu[2:5] == ["steering", "12", "12"]  # 2 points x 3 seeds x 2 datasets
    assert float(silu[5]) < 80 and silu[7] == "yes" and float(silu[9].replace(",", "")) > 0
    assert silu[8] == "1.00"  # packed: the tokens fed are the real ones
    assert lines["big", "full"][7] == "NO" and lines["big", "base"][3:5] == ["0", "2"]
    assert lines["tiny", "silu"][5] == "-"  # built by the pipeline: no config to plan from
    assert "warning: big full needs ~" in done.stderr
    assert "4 P for frozen-base methods" in done.stdout


# The published parameter counts of the paper's models (their model cards), in billions.
PUBLISHED = {
    "meta-llama/Llama-3.2-1B": 1.24,
    "google/gemma-3-1b-it": 1.00,
    "Qwen/Qwen3-4B": 4.02,
    "meta-llama/Llama-3.1-8B": 8.03,
}


def test_the_shipped_shapes_of_the_paper_models_give_their_published_sizes(tmp_path, monkeypatch):
    from steering.loading.public_configs import PUBLIC_CONFIGS

    assert set(PUBLIC_CONFIGS) == set(PUBLISHED)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))  # nothing downloaded
    for name, billions in PUBLISHED.items():
        config = memory.read_config(name)
        assert config["source"] == f"https://huggingface.co/{name}/blob/main/config.json"
        assert abs(memory.shape_of(config).parameters() / 1e9 - billions) < 0.01, name
    local = tmp_path / "Qwen" / "Qwen3-4B"  # a local config.json wins
    local.mkdir(parents=True)
    (local / "config.json").write_text(json.dumps(LLAMA_8B))
    monkeypatch.chdir(tmp_path)
    assert memory.read_config("Qwen/Qwen3-4B") == LLAMA_8B


def test_plan_of_the_paper_grid_before_any_download_prints_every_row(tmp_path):
    """A clean environment: HF_HOME an empty directory, no hub cache, no network."""
    import os

    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    done = subprocess.run(
        [sys.executable, "scripts/plan.py", "--configfile", "config/paper.yaml"]
        + ["--startup-s", "60", "--disk-gbps", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    table = done.stdout[done.stdout.index("model ") :]  # after any library's notice
    lines = table.split("\n\n")[0].splitlines()
    assert lines[0].split()[-2:] == ["GPU-hours", "fixed"]
    assert len(lines) == 1 + 4 * 9  # four models x nine variants
    for line in lines[1:]:
        hours, fixed = (float(v.replace(",", "")) for v in line.split()[-2:])
        assert hours > fixed > 0, line
    assert "0 GPU-hours" not in done.stdout
    assert "60 s start-up and the weights (2 bytes a parameter) read at 1 GB/s" in done.stdout
    bad = subprocess.run(
        [sys.executable, "scripts/plan.py", "--configfile", "config/paper.yaml"]
        + ["--disk-gbps", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "--disk-gbps 0.0 must be > 0" in bad.stderr


def _script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"script_{name}", ROOT / "scripts" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_plan_and_each_job_agree_on_every_paper_job_and_gpu_kind(monkeypatch):
    """For every training job of config/paper.yaml (each model, dataset and sweep point; the
    seeds' jobs are alike) and each GPU kind plan.py knows: the plan's "fits" holds exactly
    when the job's own check passes at that kind's reported capacity, the job built as it
    runs, from the command line the pipeline gives it, under torchrun's WORLD_SIZE. And the
    shipped grid fits every kind."""
    import copy
    import shlex

    from steering.pipeline import budget, grid_config
    from steering.tasks import get_task

    config = grid_config.read_yaml(ROOT / "config/paper.yaml")
    grid_config.check(config, copy.deepcopy(config), schema=ROOT / "config/schema.yaml")
    grid = jobs.grid(config)
    scripts = {"train.py": _script("train.py"), "train_joint.py": _script("train_joint.py")}
    checked = 0
    for model in config["models"]:
        shape = budget.model_shape(config, model)
        for dataset in config["datasets"]:
            task = get_task(dataset)
            for job in budget.train_jobs(grid, model, shape, list(grid["variants"]), dataset):
                argv = shlex.split(jobs.train_args(grid, model, dataset, job.variant, 0))
                script = scripts[jobs.train_script(grid, job.variant).split("/")[-1]]
                settings = script.settings_from(argv)
                assert settings.bs * settings.grad_accum * job.gpus == 16, job  # the protocol's
                monkeypatch.setenv("WORLD_SIZE", str(job.gpus))
                for kind, capacity in memory.GPU_MEMORY.items():
                    planned = job.estimate.total <= capacity
                    try:
                        memory.plan_training(settings, task, capacity=capacity)
                        passes = True
                    except ValueError:
                        passes = False
                    assert planned == passes, (kind, job)
                    assert planned, f"{kind}: {model} {dataset} {job.variant} does not fit"
                    checked += 1
    assert checked == 3 * 4 * 6 * 41  # kinds x models x datasets x trained points


def test_plan_names_the_line_and_column_of_a_config_that_is_not_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  m: {name: x\ndatasets: {BoolQ: {}}\n")
    done = subprocess.run(
        [sys.executable, "scripts/plan.py", "--configfile", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=cpu_env(),
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith(f"error: config file {bad} is not valid YAML: line 3, column ")


def test_the_plan_decodes_at_the_bandwidth_a_decode_benchmark_measured_on_that_gpu():
    from steering.pipeline import budget

    result = {  # benchmarks/decode_step.py on an H100: 1 GB of weights, 0.5 ms a step at 16
        "machine": {"device": "NVIDIA H100 80GB HBM3"},
        "weight_bytes": 10**9,
        "rows": [{"batch": 16, "step_ms_dynamic": 0.5}, {"batch": 64, "step_ms_dynamic": 0.2}],
    }
    share, name = budget.measured_bandwidth_use({"decode_gpu_x.json": result}, "h100")
    assert share == pytest.approx(2e12 / 3.35e12) and name == "decode_gpu_x.json"
    assert budget.measured_bandwidth_use({"decode_gpu_x.json": result}, "a100") is None
    assert budget.measured_bandwidth_use({}, "h100") is None  # the plan keeps its 60 %
