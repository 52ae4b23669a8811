"""Sweeps: expansion into points, their names (stable, path-safe, parseable), the pipeline's
jobs for them, and every bad sweep the config checks refuse (all listed in one message)."""

import json
import re
import shlex

import pytest

from steering.methods.reft import reft_positions
from steering.pipeline import config_schema, grid_config, jobs, sweep
from tests.workflow import ROOT

SCHEMA = config_schema.load(ROOT / "config/schema.yaml")


@pytest.mark.parametrize(
    "value, text",
    [
        (0.002, "0.002"),
        (5e-05, "5e-05"),
        (5.0e-5, "5e-05"),  # how YAML's 5.0e-5 arrives
        (0.0015, "0.0015"),
        (1e20, "1e20"),  # never a '+' (Python writes 1e+20)
        (2, "2"),
        (2.0, "2.0"),
        (None, "null"),
        ("silu", "silu"),
        ("first7_last7", "first7_last7"),
    ],
)
def test_values_are_named_and_read_back_exactly(value, text):
    assert sweep.format_value(value) == text
    back = sweep.parse_value(text)
    assert back == value and type(back) is type(value)


@pytest.mark.parametrize("value", [True, float("nan"), float("inf"), "a b", "x/y", "null", [1], {}])
def test_values_that_cannot_name_a_run_are_refused(value):
    with pytest.raises(ValueError):
        sweep.format_value(value)


def test_expansion_names_settings_and_product():
    variants = {
        "base": {"method": "base"},
        "silu": {"rank": 8, "paper": "post-block r=8 SiLU", "sweep": {"lr": [0.001, 0.002]}},
        "reft": {"method": "reft", "sweep": {"reft_positions": ["last1"], "lr": [5e-4, 1e-3]}},
    }
    runs = sweep.expand(variants)
    assert list(runs) == [
        "base",
        "silu@lr=0.001",
        "silu@lr=0.002",
        "reft@lr=0.0005+reft_positions=last1",
        "reft@lr=0.001+reft_positions=last1",
    ]
    assert runs["silu@lr=0.002"] == {"rank": 8, "paper": "post-block r=8 SiLU", "lr": 0.002}
    assert runs["reft@lr=0.001+reft_positions=last1"] == {
        "method": "reft",
        "lr": 0.001,
        "reft_positions": "last1",
    }
    assert runs["base"] is variants["base"]
    product = sweep.points({"rank": [4, 8], "lr": [1, 2, 3]})
    assert len(product) == 6 and product[0] == {"lr": 1, "rank": 4}
    assert product[-1] == {"lr": 3, "rank": 8}


def test_names_are_stable_path_safe_and_parse_back():
    one = sweep.expand({"v": {"sweep": {"rank": [4, 8], "lr": [0.001, 0.002]}}})
    other = sweep.expand({"v": {"sweep": {"lr": [0.002, 0.001], "rank": [8, 4]}}})
    assert sorted(one) == sorted(other)  # the mapping's key order and list order rename nothing
    for name, entry in one.items():
        assert re.fullmatch(r"[A-Za-z0-9_.@+=-]+", name) and "," not in name
        variant, settings = sweep.parse_run_name(name)
        assert variant == "v" and settings == {k: entry[k] for k in ("lr", "rank")}
    assert sweep.parse_run_name("plain") == ("plain", {})
    assert sweep.split_run_name("v@lr=0.001+rank=4") == ("v", "lr=0.001+rank=4")
    with pytest.raises(ValueError, match="not a sweep point"):
        sweep.parse_label("lr")


CONFIG = {
    "models": {"m": {"tiny": {"arch": "llama", "hidden_size": 32}}},
    "datasets": {"BoolQ": {"source": "synthetic"}},
    "variants": {
        "base": {"method": "base"},
        "silu": {"sweep": {"lr": [0.001, 0.002]}},
        "reft": {"method": "reft", "sweep": {"reft_positions": ["last1", "first7_last7"]}},
        "lora": {"method": "lora", "rank": 4, "sweep": {"lr": [1e-4]}},
    },
    "seeds": [0, 1],
    "splits": ["validation", "test"],
    "training": {"lr": 0.0009},
}


def test_the_pipeline_runs_every_point_for_every_seed_as_an_ordinary_run():
    grid = jobs.grid(CONFIG)
    runs = jobs.runs(grid)
    assert len(runs) == 1 + (2 + 2 + 1) * 2  # base once, every point x seed
    assert {r.variant for r in runs} == {
        "base",
        "silu@lr=0.001",
        "silu@lr=0.002",
        "reft@reft_positions=last1",
        "reft@reft_positions=first7_last7",
        "lora@lr=0.0001",
    }
    args = shlex.split(jobs.train_args(grid, "m", "BoolQ", "silu@lr=0.002", 1))
    assert args[args.index("--lr") + 1] == "0.002"
    assert (
        args[args.index("--output-dir") + 1]
        == "results/runs/m/BoolQ/silu@lr=0.002/seed1/checkpoint"
    )
    reft = shlex.split(jobs.train_args(grid, "m", "BoolQ", "reft@reft_positions=first7_last7", 0))
    assert reft[reft.index("--reft-first-n") + 1] == "7"
    assert reft[reft.index("--reft-last-n") + 1] == "7"
    assert reft[reft.index("--lr") + 1] == "0.0009"  # unswept settings as before
    lora = shlex.split(jobs.train_args(grid, "m", "BoolQ", "lora@lr=0.0001", 0))
    assert lora[lora.index("--lora-rank") + 1] == "4" and lora[lora.index("--lr") + 1] == "0.0001"
    assert "results/runs/m/BoolQ/silu@lr=0.001/seed1/validation.metrics.json" in (
        jobs.metrics_files(grid)
    )


def test_adding_a_value_changes_no_other_job():
    grid = jobs.grid(CONFIG)
    more = json.loads(json.dumps(CONFIG))
    more["variants"]["silu"]["sweep"]["lr"].append(0.003)
    bigger = jobs.grid(more)
    assert set(bigger["variants"]) - set(grid["variants"]) == {"silu@lr=0.003"}
    for run in jobs.runs(grid):
        if run.variant == "base":
            continue
        args = (run.model, run.dataset, run.variant, run.seed)
        assert jobs.train_args(bigger, *args) == jobs.train_args(grid, *args)
        assert jobs.eval_args(bigger, *args) == jobs.eval_args(grid, *args)


@pytest.mark.parametrize(
    "first, last, name",
    [(0, 1, "last1"), (7, 7, "first7_last7"), (3, 0, "first3"), (0, 12, "last12")],
)
def test_reft_positions_by_name(first, last, name):
    assert reft_positions(name) == (first, last)


def test_bad_reft_positions_name():
    with pytest.raises(ValueError, match="is not last<n>, first<n> or first<n>_last<m>"):
        reft_positions("last0")


def _problems(variants, **top):
    config = {**json.loads(json.dumps(CONFIG)), "variants": variants, **top}
    return grid_config.problems(config, schema=SCHEMA)


BAD = [
    pytest.param({"sweep": {"lr": []}}, "variants.v.sweep.lr: the list is empty", id="empty"),
    pytest.param(
        {"sweep": {"lr": 0.001}}, "variants.v.sweep.lr: must be a list of values", id="not-a-list"
    ),
    pytest.param(
        {"sweep": {"lr": [0.001, 0.002, 1.0e-3]}},
        "variants.v.sweep.lr: repeats 0.001; list each value once",
        id="repeated",
    ),
    pytest.param(
        {"sweep": {"lrr": [0.001]}},
        "variants.v.sweep.lrr: no method reads 'lrr'; method steering can sweep",
        id="unknown-key",
    ),
    pytest.param(
        {"kind": "vector", "sweep": {"rank": [1, 2]}},
        "variants.v.sweep.rank: method steering does not read 'rank' (a steering vector",
        id="not-read-by-a-vector",
    ),
    pytest.param(
        {"sweep": {"lora_rank": [4, 8]}},
        "variants.v.sweep.lora_rank: method steering does not read 'lora_rank' (it is only "
        "read by method(s) joint)",
        id="key-of-another-method",
    ),
    pytest.param(
        {"sweep": {"seed": [0, 1]}},
        "variants.v.sweep.seed: cannot be swept: seeds come from the top-level 'seeds' list",
        id="seed",
    ),
    pytest.param(
        {"sweep": {"seeds": [[0, 1]]}},
        "variants.v.sweep.seeds: cannot be swept: seeds come from",
        id="seeds",
    ),
    pytest.param(
        {"method": "base", "sweep": {"lr": [0.001, 0.002]}},
        "variants.v: a base variant (the untrained model) trains nothing",
        id="base",
    ),
    pytest.param(
        {"sweep": [0.001]}, "variants.v: 'sweep' must map settings to lists", id="not-a-mapping"
    ),
    pytest.param({"sweep": {}}, "variants.v: 'sweep' must map settings", id="empty-mapping"),
    pytest.param(
        {"lr": 0.001, "sweep": {"lr": [0.001, 0.002]}},
        "variants.v.sweep.lr: 'lr' is also set on the variant (0.001); set it or sweep it",
        id="set-and-swept",
    ),
    pytest.param(
        {"sweep": {"lr": [0.001, -0.5]}},
        "variants.v.sweep.lr: -0.5 is less than or equal to the minimum of 0",
        id="value-the-schema-refuses",
    ),
    pytest.param(
        {"sweep": {"activation": ["silu", "swish"]}},
        "variants.v.sweep.activation: 'swish' is not one of",
        id="unknown-choice",
    ),
    pytest.param(
        {"method": "reft", "reft_last_n": 2, "sweep": {"reft_positions": ["last1", "first2"]}},
        "variants.v@reft_positions=last1 (method reft): give reft_positions or reft_last_n",
        id="reft-positions-twice",
    ),
    pytest.param(
        {"method": "joint", "sweep": {"kind": ["adapter", "vector"]}},
        "variants.v@kind=vector (method joint): joint adaptation does not support kind: vector",
        id="a-point-the-method-cannot-run",
    ),
]


@pytest.mark.parametrize("variant, message", BAD)
def test_bad_sweeps_are_named_by_variant_and_key(variant, message):
    found = _problems({"v": variant})
    assert any(message in p for p in found), found


def test_a_point_with_the_settings_of_another_variant_is_refused():
    found = _problems({"a": {"lr": 0.002}, "v": {"sweep": {"lr": [0.001, 0.002]}}})
    assert "variants.v@lr=0.002 has the same settings as variants.a" in "\n".join(found)


def test_the_same_run_is_found_through_the_training_defaults():
    # CONFIG trains at 0.0009: a plain variant and the sweep's 0.0009 point are one run ...
    found = _problems({"a": {}, "v": {"sweep": {"lr": [0.0009, 0.002]}}})
    assert found == [
        "variants.v@lr=0.0009 has the same settings as variants.a: the grid would run and "
        "report it twice; remove one (or use seeds to repeat a run)"
    ]
    # ... unless a dataset trains at its own rate: then only the swept point keeps 0.0009
    datasets = {"BoolQ": {"source": "synthetic", "lr": 0.01}}
    assert not _problems({"a": {}, "v": {"sweep": {"lr": [0.0009]}}}, datasets=datasets)


def test_a_sweep_needs_the_validation_split_to_select_on():
    found = _problems({"v": {"sweep": {"lr": [0.001, 0.002]}}}, splits=["test"])
    assert any("add validation to splits" in p for p in found), found
    assert not _problems({"v": {"sweep": {"lr": [0.001]}}}, splits=["test"])  # one point


def test_every_problem_is_listed_in_one_message(tmp_path):
    config = {
        **CONFIG,
        "variants": {
            "a": {"sweep": {"lr": []}},
            "b": {"method": "base", "sweep": {"lr": [1.0]}},
            "c": {"sweep": {"seed": [1], "rank": 3}},
        },
    }
    with pytest.raises(grid_config.GridConfigError) as e:
        grid_config.check(config, schema=ROOT / "config/schema.yaml")
    text = str(e.value)
    assert text.startswith("the config has 4 problem(s):")
    for where in (
        "variants.a.sweep.lr",
        "variants.b:",
        "variants.c.sweep.seed",
        "variants.c.sweep.rank",
    ):
        assert where in text


def test_good_sweeps_pass():
    assert not _problems(
        {
            "silu": {"sweep": {"lr": [0.001, 0.002], "rank": [4, 8]}},
            "lin": {"activation": None, "sweep": {"lr": [0.001]}},
            "reft": {"method": "reft", "sweep": {"reft_positions": ["last1", "first7_last7"]}},
            "joint": {"method": "joint", "sweep": {"lora_lr": [1e-4, 2e-4]}},
        }
    )
