"""The plan's training tokens (steering/pipeline/padding.py, steering/pipeline/budget.py):
packed batches feed the real tokens, padded ones each batch's longest row, and the plan
charges a variant for what its batches feed (the real-data check of the simulation is in
tests/test_real_model.py)."""

import copy

import pytest

from steering.methods import get_method
from steering.pipeline import budget, grid_config, padding
from steering.tasks import get_task
from steering.tasks.base import LENGTH_PROBS
from steering.training import packing
from tests.workflow import ROOT


@pytest.mark.parametrize(
    ("settings", "refusal", "layout"),
    [
        ({}, None, padding.PACKED),
        ({"packing": True}, None, padding.PACKED),
        ({"packing": False}, None, padding.PADDED),
        ({}, "ReFT acts on particular positions", padding.PADDED),
        ({"length_grouping": True}, None, padding.PACKED),  # packed in either order
        ({"length_grouping": True, "packing": False}, None, padding.GROUPED),
        ({"length_grouping": True}, "GPT-2's attention ...", padding.GROUPED),
    ],
)
def test_a_job_s_layout_follows_the_training_code(settings, refusal, layout):
    assert padding.layout(settings, refusal) == layout


def test_the_plan_reads_the_training_code_s_refusals_without_torch():
    import subprocess
    import sys

    code = (
        "import sys; import steering.pipeline.budget, steering.pipeline.padding, "
        "steering.training.packing; print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() == "False", done.stderr
    assert packing.refusal("llama", get_method("reft"), {}, None)


def test_padding_costs_what_the_profile_says_and_packing_nothing():
    task = get_task("GSM8K")
    real, packed = padding.tokens_per_row(task, task.max_length, padding.PACKED, 8, 16)
    assert packed == real
    assert real < task.mean_tokens  # truncation at 256 cuts GSM8K's long tail
    _, one = padding.tokens_per_row(task, task.max_length, padding.PADDED, 1, 16)
    assert one == real  # a batch of one row pads nothing
    fed = [
        padding.tokens_per_row(task, task.max_length, padding.PADDED, bs, 16)[1]
        for bs in (2, 8, 32)
    ]
    assert real < fed[0] < fed[1] < fed[2] <= task.max_length  # more rows, a longer longest
    _, grouped = padding.tokens_per_row(task, task.max_length, padding.GROUPED, 8, 16)
    assert real < grouped < fed[1]
    _, capped = padding.tokens_per_row(task, 64, padding.PADDED, 8, 16)
    assert capped == 64  # every GSM8K row is longer than 64 tokens (its shortest: 67)
    # the same call gives the same figure: the plan never changes between runs
    assert padding.tokens_per_row(task, task.max_length, padding.PADDED, 8, 16)[1] == fed[1]


def test_a_task_without_a_profile_is_charged_its_mean_tokens_and_named():
    task = get_task("SVAMP")
    assert task.length_quantiles == ()
    assert padding.tokens_per_row(task, 256, padding.PADDED, 8, 16) == (task.mean_tokens,) * 2
    assert budget.unprofiled({"datasets": {"SVAMP": {}, "GSM8K": {}}}) == ["SVAMP"]


@pytest.mark.parametrize(
    "name", ["ARC_Challenge", "GSM8K", "BoolQ", "Winogrande", "AQuA", "ListOps"]
)
def test_every_paper_task_has_a_length_profile(name):
    task = get_task(name)
    q = task.length_quantiles
    assert len(q) == len(LENGTH_PROBS) and list(q) == sorted(q), name
    assert q[0] <= task.mean_tokens <= q[-1]


def test_the_plan_charges_a_padded_variant_for_its_padding():
    config = {
        "models": {"llama": {"name": "meta-llama/Llama-3.2-1B"}},
        "datasets": {"ARC_Challenge": {}},
        "variants": {
            "packed": {"method": "steering"},
            "padded": {"method": "steering", "packing": False},
            "grouped": {"method": "steering", "length_grouping": True, "packing": False},
            "reft": {"method": "reft"},
        },
        "seeds": [0],
    }
    grid_config.check(config, copy.deepcopy(config), schema=ROOT / "config/schema.yaml")
    rows = {r.variant: r for r in budget.plan(config, budget.Assumptions())}
    assert rows["packed"].fed_over_real == 1.0
    assert rows["padded"].fed_over_real == pytest.approx(1.49, abs=0.02)  # ARC, 8 rows
    assert 1.0 < rows["grouped"].fed_over_real < 1.1
    assert rows["reft"].fed_over_real == pytest.approx(rows["padded"].fed_over_real)
    assert rows["packed"].gpu_hours < rows["grouped"].gpu_hours < rows["padded"].gpu_hours
