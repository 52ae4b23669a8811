"""steering.pipeline.jobs: the run grid and the exact job arguments built from a config."""

import json
import shlex
import sys
from pathlib import Path

import pytest
import yaml

from steering.pipeline import grid_config, jobs, placement
from steering.pipeline.grid_config import GridConfigError
from steering.tasks import EXTRA_TASKS, TASKS

ROOT = Path(__file__).resolve().parent.parent

CONFIG = {
    "models": {
        "m": {"tiny": {"arch": "llama", "hidden_size": 32}},
        "hub": {"name": "org/Model-1B", "dtype": "bfloat16"},
    },
    "datasets": {
        "BoolQ": {"source": "synthetic", "synthetic_scale": 0.1, "lr": 0.01},
        "GSM8K": {"source": "local", "data_dir": "my/gsm8k"},
        "ListOps": {},
    },
    "variants": {
        "base": {"method": "base"},
        "silu": {},
        "lin": {"activation": None, "rank": 1},
        "vec": {"kind": "vector", "lr": 0.003},
        "sub": {"sites": "submodules_official"},
    },
    "seeds": [0, 1],
    "splits": ["validation", "test"],
    "training": {"lr": 0.0009, "bs": 8, "max_eval_samples": 10, "eval_batch_size": 4},
}


def test_runs_cover_the_grid_and_base_runs_once():
    runs = jobs.runs(CONFIG)
    assert len(runs) == 2 * 3 * (4 * 2 + 1)
    assert {r.seed for r in runs if r.variant == "base"} == {0}
    assert runs[0].dir == "results/runs/m/BoolQ/base/seed0"
    assert len(jobs.metrics_files(CONFIG)) == 2 * len(runs)


def test_train_arguments_follow_variant_dataset_and_training_settings():
    args = shlex.split(jobs.train_args(CONFIG, "m", "BoolQ", "vec", 1))
    assert args[:8] == [
        "--model-name",
        "results/models/m",
        "--dataset-name",
        "BoolQ",
        "--data-dir",
        "results/data/BoolQ",
        "--no-progress",
        "--seed",
    ]
    flags = dict(zip(args[::1], args[1::1], strict=False))
    assert flags["--lr"] == "0.003"  # variant beats dataset beats training
    assert flags["--output-dir"] == "results/runs/m/BoolQ/vec/seed1/checkpoint"
    assert flags["--train-log"] == "results/runs/m/BoolQ/vec/seed1/train_log.jsonl"
    assert "--no-adapter" in args and "--adapter-rank" not in args
    assert "--max-eval-samples" not in args  # evaluation settings never retrain a run
    silu = shlex.split(jobs.train_args(CONFIG, "hub", "GSM8K", "silu", 0))
    assert silu[silu.index("--model-name") + 1] == "org/Model-1B"
    assert silu[silu.index("--dtype") + 1] == "bfloat16"
    assert silu[silu.index("--lr") + 1] == "0.0009"
    assert silu[silu.index("--nonlinearity") + 1] == "silu" and "--adapter-rank" in silu
    lin = shlex.split(jobs.train_args(CONFIG, "m", "ListOps", "lin", 0))
    assert "--linear" in lin and lin[lin.index("--adapter-rank") + 1] == "1"
    sub = shlex.split(jobs.train_args(CONFIG, "m", "ListOps", "sub", 0))
    assert "--submodules" in sub and "--official-sites" in sub
    config = json.loads(json.dumps(CONFIG))
    config["variants"]["last"] = {"positions": "last"}
    assert "--intervene-last" in shlex.split(jobs.train_args(config, "m", "BoolQ", "last", 0))
    config["variants"]["lora"] = {"method": "lora", "rank": 4, "lr": 3e-4}
    config["variants"]["full"] = {"method": "full"}
    lora = shlex.split(jobs.train_args(config, "m", "BoolQ", "lora", 0))
    assert lora[lora.index("--method") + 1] == "lora" and lora[lora.index("--lora-rank") + 1] == "4"
    assert lora[lora.index("--lr") + 1] == "0.0003" and "--nonlinearity" not in lora
    full = shlex.split(jobs.train_args(config, "m", "BoolQ", "full", 0))
    assert full[full.index("--method") + 1] == "full" and "--adapter-rank" not in full
    config["variants"]["joint"] = {
        "method": "joint",
        "lora_rank": 4,
        "rank": 2,
        "lora_lr": 1e-3,
        "orthogonal_freq": 100,
        "sites": "submodules",
    }
    assert jobs.train_script(config, "joint") == "scripts/train_joint.py"
    config["variants"]["reft"] = {"method": "reft", "rank": 4, "reft_first_n": 2}
    reft = shlex.split(jobs.train_args(config, "m", "BoolQ", "reft", 0))
    assert reft[reft.index("--method") + 1] == "reft" and reft[reft.index("--reft-rank") + 1] == "4"
    assert reft[reft.index("--reft-first-n") + 1] == "2"
    assert jobs.train_script(config, "lora") == "scripts/train.py"
    j = shlex.split(jobs.train_args(config, "m", "BoolQ", "joint", 0))
    assert (
        "--no-eval" in j
        and j[j.index("--lora-rank") + 1] == "4"
        and j[j.index("--adapter-rank") + 1] == "2"
    )
    assert j[j.index("--orthogonal-freq") + 1] == "100" and j[j.index("--lora-lr") + 1] == "0.001"
    assert "--submodules" in j
    config["variants"]["bad"] = {"method": "joint", "kind": "vector"}
    with pytest.raises(GridConfigError, match="joint adaptation does not support kind: vector"):
        grid_config.check(config)


def test_train_arguments_parse_with_the_real_scripts(monkeypatch):
    """Every flag the pipeline emits is one the variant's training script accepts."""
    import importlib.util

    config = json.loads(json.dumps(CONFIG))
    config["variants"].update(
        reft={"method": "reft", "reft_first_n": 1, "reft_last_n": 2},
        lora={"method": "lora", "rank": 4},
        full={"method": "full"},
        joint={
            "method": "joint",
            "scheduler": "cosine",
            "orthogonal_freq": "epoch",
            "lora_lr": 1e-3,
        },
    )
    root = Path(__file__).parent.parent
    for variant in config["variants"]:
        if variant == "base":
            continue
        script = jobs.train_script(config, variant)
        spec = importlib.util.spec_from_file_location(f"s_{variant}", root / script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        argv = [script, *shlex.split(jobs.train_args(config, "hub", "BoolQ", variant, 0))]
        monkeypatch.setattr(sys, "argv", argv)
        module.parse_args()


def test_eval_arguments():
    args = shlex.split(jobs.eval_args(CONFIG, "m", "BoolQ", "silu", 1))
    assert args[args.index("--ckpt-path") + 1] == "results/runs/m/BoolQ/silu/seed1/checkpoint"
    assert args[args.index("--split") + 1 : args.index("--split") + 3] == ["validation", "test"]
    assert args[args.index("--output-dir") + 1] == "results/runs/m/BoolQ/silu/seed1"
    assert args[args.index("--max-eval-samples") + 1] == "10"
    base = shlex.split(jobs.eval_args(CONFIG, "m", "BoolQ", "base", 0))
    assert "--ckpt-path" not in base


def test_data_and_model_arguments():
    assert jobs.data_args(CONFIG, "BoolQ") == (
        "--dataset-name BoolQ --out results/data/BoolQ --synthetic --seed 0 --scale 0.1"
    )
    assert jobs.data_args(CONFIG, "GSM8K").endswith("--data-dir my/gsm8k")
    assert jobs.data_args(CONFIG, "ListOps") == "--dataset-name ListOps --out results/data/ListOps"
    assert (
        jobs.tiny_model_args(CONFIG, "m") == "--arch llama --out results/models/m --hidden-size 32"
    )
    assert jobs.model_inputs(CONFIG, "m") == ["results/models/m/config.json"]
    assert jobs.model_inputs(CONFIG, "hub") == []


def test_arguments_are_quoted():
    config = json.loads(json.dumps(CONFIG))
    config["models"]["odd"] = {"name": "dir with space/it's"}
    args = jobs.train_args(config, "odd", "BoolQ", "silu", 0)
    assert shlex.split(args)[1] == "dir with space/it's"


def test_wildcard_pattern_matches_exactly_the_keys():
    import re

    pattern = re.compile(f"^(?:{jobs.wildcard_pattern(['a.b', 'c-d'])})$")
    assert pattern.match("a.b") and pattern.match("c-d") and not pattern.match("axb")


def test_references_json():
    refs = json.loads(
        jobs.references(
            {
                "models": {"a": {"paper": "Llama-3.2-1B"}, "b": {}},
                "variants": {"s": {"paper": "ReFT"}, "t": {}},
            }
        )
    )
    assert refs == {"models": {"a": "Llama-3.2-1B"}, "variants": {"s": "ReFT"}}


def test_schema_lists_exactly_the_registered_tasks():
    schema = yaml.safe_load((Path(__file__).parent.parent / "config/schema.yaml").read_text())
    datasets = [*TASKS, *EXTRA_TASKS]
    assert schema["properties"]["datasets"]["propertyNames"]["enum"] == datasets
    assert schema["properties"]["analysis"]["properties"]["datasets"]["items"]["enum"] == datasets
    # and every grpo key has its place in the train job's flags
    grpo = schema["$defs"]["training"]["grpo"]["properties"]
    assert set(grpo) == set(jobs.GRPO_KEYS)


def test_pipeline_module_imports_no_torch():
    import subprocess

    modules = "steering.pipeline.jobs, steering.pipeline.results"
    code = f"import sys, {modules}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_gpus_per_job_set_the_launcher_the_request_and_the_device_map():
    assert placement.train_launcher(CONFIG, "m", "silu") == "python"
    assert (placement.train_gpus(CONFIG, "m", "silu"), placement.eval_gpus(CONFIG, "m")) == (1, 1)
    assert "--device-map" not in jobs.eval_args(CONFIG, "m", "BoolQ", "silu", 0)
    config = json.loads(json.dumps(CONFIG))
    config["training"].update(gpus_per_train=2, gpus_per_eval=1)
    config["models"]["hub"].update(gpus_per_train=4, gpus_per_eval=2)  # the model's own wins
    assert placement.train_gpus(config, "m", "silu") == 2
    assert placement.train_gpus(config, "hub", "silu") == 4
    launcher = shlex.split(placement.train_launcher(config, "hub", "silu"))
    assert launcher == [
        *("python", "-m", "torch.distributed.run", "--standalone"),
        *("--nproc-per-node", "4"),
    ]
    hub_eval = shlex.split(jobs.eval_args(config, "hub", "BoolQ", "silu", 0))
    assert hub_eval[hub_eval.index("--device-map") + 1] == "auto"
    assert "--device-map" not in jobs.eval_args(config, "m", "BoolQ", "silu", 0)
    config["models"]["m"]["device_map"] = "sequential"  # asked for explicitly, on one GPU
    m_eval = shlex.split(jobs.eval_args(config, "m", "BoolQ", "silu", 0))
    assert m_eval[m_eval.index("--device-map") + 1] == "sequential"


def test_training_resumes_from_the_run_directory_not_an_output():
    args = shlex.split(jobs.train_args(CONFIG, "m", "BoolQ", "silu", 1))
    assert args[args.index("--resume-dir") + 1] == "results/runs/m/BoolQ/silu/seed1/resume"
    assert args[args.index("--save-steps") + 1] == "100"  # the schema's default
    config = json.loads(json.dumps(CONFIG))
    config["training"]["save_steps"] = 0
    args = shlex.split(jobs.train_args(config, "m", "BoolQ", "silu", 1))
    assert args[args.index("--save-steps") + 1] == "0"


def test_rule_inputs_and_resources_are_constants_where_the_config_allows():
    """Snakemake calls a function once per job: over the paper grid's thousands of jobs a
    constant is seconds faster, so a value the same for every model is a constant."""
    from types import SimpleNamespace as W

    config = jobs.grid(json.loads(json.dumps(CONFIG)))
    assert placement.per_train_job(config, placement.train_gpus) == 1
    assert placement.per_job(config, placement.eval_gpus) == 1
    config["models"]["hub"]["gpus_per_train"] = 2
    gpus = placement.per_train_job(config, placement.train_gpus)
    assert (gpus(W(model="m", variant="silu")), gpus(W(model="hub", variant="silu"))) == (1, 2)
    config["models"]["m"]["variants"] = {"silu": {"gpus_per_train": 4}}  # one variant's own
    gpus = placement.per_train_job(config, placement.train_gpus)
    assert (gpus(W(model="m", variant="silu")), gpus(W(model="m", variant="base"))) == (4, 1)
    mixed = jobs.model_input(config)  # one tiny model, one hub model
    assert mixed(W(model="m")) == ["results/models/m/config.json"] and mixed(W(model="hub")) == []
    tiny = {**config, "models": {"m": config["models"]["m"]}}
    assert jobs.model_input(tiny) == ["results/models/{model}/config.json"]
    assert jobs.model_input({**config, "models": {"h": {"name": "x"}}}) == []
    checkpoint = jobs.evaluate_checkpoint(config)  # a base variant: no checkpoint for it
    assert checkpoint(W(model="m", dataset="BoolQ", variant="base", seed="0")) == []
    assert checkpoint(W(model="m", dataset="BoolQ", variant="silu", seed="1")) == [
        "results/runs/m/BoolQ/silu/seed1/checkpoint"
    ]
    trained = {**config, "variants": {"silu": {}}}
    assert jobs.evaluate_checkpoint(trained) == [
        "results/runs/{model}/{dataset}/{variant}/seed{seed}/checkpoint"
    ]


def test_single_bos_reaches_both_scripts_only_when_asked():
    assert "--single-bos" not in jobs.train_args(CONFIG, "hub", "BoolQ", "silu", 0)
    config = json.loads(json.dumps(CONFIG))
    config["models"]["hub"]["single_bos"] = True
    for args in (
        jobs.train_args(config, "hub", "BoolQ", "silu", 0),
        jobs.eval_args(config, "hub", "BoolQ", "silu", 0),
    ):
        assert "--single-bos" in shlex.split(args)
    assert "--single-bos" not in jobs.eval_args(config, "m", "BoolQ", "silu", 0)
    config["training"]["single_bos"] = True  # for every model, unless one says otherwise
    config["models"]["hub"]["single_bos"] = False
    assert "--single-bos" in jobs.train_args(config, "m", "BoolQ", "silu", 0)
    assert "--single-bos" not in jobs.train_args(config, "hub", "BoolQ", "silu", 0)


def filled(config: dict) -> dict:
    """``config`` validated and with its defaults filled in, as the Snakefile does."""
    from steering.pipeline import config_schema

    schema = config_schema.load(Path(__file__).parent.parent / "config/schema.yaml")
    config = json.loads(json.dumps(config))
    assert config_schema.errors(config, schema) == []
    config_schema.fill_defaults(config, schema)
    return config


def test_every_job_keeps_its_arguments():
    """The exact arguments of every job of a config covering every method and option, as
    recorded in tests/data/pipeline_jobs.json. Snakemake reruns a job whose params change,
    so a refactoring that changed one would retrain finished runs."""
    recorded = json.loads((Path(__file__).parent / "data/pipeline_jobs.json").read_text())
    config = jobs.grid(filled(recorded["config"]))
    built = {}
    for r in jobs.runs(config):
        job = {"eval_args": jobs.eval_args(config, r.model, r.dataset, r.variant, r.seed)}
        if jobs.is_trained(config, r.variant):
            job["train_args"] = jobs.train_args(config, r.model, r.dataset, r.variant, r.seed)
            job["script"] = jobs.train_script(config, r.variant)
            job["launcher"] = placement.train_launcher(config, r.model, r.variant)
        built[f"{r.model}/{r.dataset}/{r.variant}/{r.seed}"] = job
    assert sorted(built) == sorted(recorded["jobs"])
    for key, job in built.items():
        assert job == recorded["jobs"][key], key
    assert {d: jobs.data_args(config, d) for d in config["datasets"]} == recorded["data"]
    tiny = {m: jobs.tiny_model_args(config, m) for m, e in config["models"].items() if "tiny" in e}
    assert tiny == recorded["tiny"]


def test_a_spread_evaluation_gets_no_device():
    """``training.device`` with a model spread over GPUs: inference takes --device or
    --device-map, never both, so the evaluation job must not pass the device."""
    config = json.loads(json.dumps(CONFIG))
    config["training"]["device"] = "cuda"
    config["models"]["hub"]["gpus_per_eval"] = 2
    spread = shlex.split(jobs.eval_args(config, "hub", "BoolQ", "silu", 0))
    assert "--device" not in spread and spread[spread.index("--device-map") + 1] == "auto"
    one = shlex.split(jobs.eval_args(config, "m", "BoolQ", "silu", 0))
    assert one[one.index("--device") + 1] == "cuda" and "--device-map" not in one
    train = shlex.split(jobs.train_args(config, "hub", "BoolQ", "silu", 0))
    assert train[train.index("--device") + 1] == "cuda"  # training places the model itself


def test_fsdp_reaches_the_methods_that_shard_and_needs_two_gpus():
    config = json.loads(json.dumps(CONFIG))
    config["variants"]["full"] = {"method": "full"}
    config["models"]["hub"].update(sharding="fsdp", gpus_per_train=4)
    full = shlex.split(jobs.train_args(config, "hub", "BoolQ", "full", 0))
    assert full[-2:] == ["--sharding", "fsdp"]
    assert "--sharding" not in jobs.train_args(config, "hub", "BoolQ", "silu", 0)  # DDP
    assert "--sharding" not in jobs.train_args(config, "m", "BoolQ", "full", 0)
    assert placement.train_launcher(config, "hub", "full").endswith("--nproc-per-node 4")
    assert not [p for p in grid_config.problems(config) if "sharding" in p]
    config["models"]["hub"]["gpus_per_train"] = 1
    (problem,) = [p for p in grid_config.problems(config) if "sharding" in p]
    assert "models.hub: sharding: fsdp shards over the GPUs of a training job" in problem


def test_length_grouping_is_asked_for_by_variant_dataset_or_training_only():
    config = filled(CONFIG)
    assert "--length-grouping" not in jobs.train_args(config, "m", "BoolQ", "silu", 0)
    config["variants"]["fast"] = {"length_grouping": True}
    assert "--length-grouping" in shlex.split(jobs.train_args(config, "m", "BoolQ", "fast", 0))
    assert "--length-grouping" not in jobs.train_args(config, "m", "BoolQ", "silu", 0)
    config["datasets"]["ListOps"]["length_grouping"] = True
    assert "--length-grouping" in jobs.train_args(config, "m", "ListOps", "silu", 0)
    assert "--length-grouping" not in jobs.train_args(config, "m", "BoolQ", "silu", 0)
    config["training"]["length_grouping"] = True
    assert "--length-grouping" in jobs.train_args(config, "m", "BoolQ", "silu", 0)


def test_a_models_variant_gets_its_own_gpus_sharding_and_batch_split():
    """``models.<m>.variants.<v>``: where that variant's jobs run and how their batch is
    split (every point of a sweep takes it); the other variants and models keep theirs."""
    config = json.loads(json.dumps(CONFIG))
    config["variants"]["full"] = {"method": "full", "sweep": {"lr": [1e-5, 2e-5]}}
    config["models"]["hub"]["variants"] = {
        "full": {"gpus_per_train": 2, "sharding": "fsdp", "bs": 4},
        "silu": {"bs": 4, "grad_accum": 4},
    }
    assert [p for p in grid_config.problems(config) if "models." in p] == []
    grid = jobs.grid(config)
    full = shlex.split(jobs.train_args(grid, "hub", "BoolQ", "full@lr=1e-05", 0))
    assert full[full.index("--bs") + 1] == "4" and full[-2:] == ["--sharding", "fsdp"]
    assert "--grad-accum" not in full  # 4 x 2 x 2 GPUs: the protocol's accumulation
    assert placement.train_launcher(grid, "hub", "full@lr=2e-05").endswith("--nproc-per-node 2")
    silu = shlex.split(jobs.train_args(grid, "hub", "BoolQ", "silu", 0))
    assert silu[silu.index("--bs") + 1] == "4" and silu[silu.index("--grad-accum") + 1] == "4"
    plain = shlex.split(jobs.train_args(grid, "m", "BoolQ", "silu", 0))
    assert "--grad-accum" not in plain and plain[plain.index("--bs") + 1] == "8"
    assert placement.train_launcher(grid, "m", "full@lr=1e-05") == "python"


@pytest.mark.parametrize(
    "entry, problem",
    [
        ({"silu": {"bs": 4}}, "models.hub.variants.silu: bs 4 x grad_accum 2 x 1 GPU(s) = 8 rows"),
        ({"silu": {"gpus_per_train": 2}}, "= 32 rows an optimizer step on BoolQ, and the run"),
        ({"silu": {"sharding": "fsdp", "gpus_per_train": 2, "bs": 4}}, "method steering does "),
        ({"full": {"sharding": "fsdp"}}, "variants.full: sharding: fsdp shards over the GPUs"),
        ({"nope": {"bs": 4}}, "models.hub.variants.nope: no such variant; the config's are"),
    ],
)
def test_a_placement_that_would_change_what_is_trained_is_refused(entry, problem):
    config = json.loads(json.dumps(CONFIG))
    config["variants"]["full"] = {"method": "full"}
    config["models"]["hub"]["variants"] = entry
    assert [p for p in grid_config.problems(config) if problem in p], grid_config.problems(config)


def test_a_grpo_variant_trains_with_its_objective_and_settings(monkeypatch):
    """``objective: grpo`` and its ``grpo`` block become train.py's GRPO flags (checked by its
    own parser); the supervised variants' arguments do not change; joint's go to its own
    script, which takes them too."""
    import importlib.util

    config = json.loads(json.dumps(CONFIG))
    weights = {"format": 0.5, "accuracy": 1}
    config["variants"]["rl"] = {
        "objective": "grpo",
        "grpo": {"num_generations": 4, "max_steps": 9, "reward_weights": weights},
    }
    grid = jobs.grid(filled(config))
    before = jobs.grid(filled(CONFIG))
    assert jobs.train_args(grid, "m", "BoolQ", "silu", 0) == jobs.train_args(
        before, "m", "BoolQ", "silu", 0
    )
    rl = shlex.split(jobs.train_args(grid, "m", "BoolQ", "rl", 0))
    assert rl[rl.index("--objective") :][:9] == [
        "--objective", "grpo", "--num-generations", "4", "--max-steps", "9",
        "--reward-weights", "accuracy=1", "format=0.5",
    ]  # fmt: skip
    # the same block in another key order (a YAML dump sorts keys): the same arguments
    config["variants"]["rl"]["grpo"] = dict(reversed(config["variants"]["rl"]["grpo"].items()))
    config["variants"]["rl"]["grpo"]["reward_weights"] = dict(reversed(weights.items()))
    assert jobs.train_args(jobs.grid(filled(config)), "m", "BoolQ", "rl", 0) == shlex.join(rl)
    spec = importlib.util.spec_from_file_location("s_rl", ROOT / "scripts/train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    a = module.parse_args(rl)
    assert (a.objective, a.num_generations, a.max_steps) == ("grpo", 4, 9)
    assert a.reward_weights == ["accuracy=1", "format=0.5"]
    # joint trains with GRPO through its own script, which takes the same flags
    joint = json.loads(json.dumps(CONFIG))
    joint["variants"]["j"] = {"method": "joint", "objective": "grpo", "grpo": {"max_steps": 3}}
    assert grid_config._variant_problems("j", joint["variants"]["j"]) == []
    j = shlex.split(jobs.train_args(jobs.grid(filled(joint)), "m", "BoolQ", "j", 0))
    assert jobs.train_script(jobs.grid(filled(joint)), "j") == "scripts/train_joint.py"
    spec = importlib.util.spec_from_file_location("s_joint", ROOT / "scripts/train_joint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    a = module.parse_args(j)
    assert (a.objective, a.max_steps) == ("grpo", 3)
