"""Paired intervals between variants, summary-cell intervals and selection stability, on
hand-made per-item verdicts whose answers are known (steering/pipeline/intervals.py,
comparisons.py, items.py), directly and through scripts/aggregate.py."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from steering.pipeline import comparisons, intervals, items
from steering.pipeline.results import long_table
from steering.pipeline.selection import select, selected_rows
from steering.runtime.provenance import items_digest
from tests.test_results import run_aggregate

KEY = ("m", "D", "test")


def resampler(n=4000, seed=0):
    return intervals.Resampler(n, seed)


def test_identical_methods_differ_by_zero_with_an_interval_around_it():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2, 300).astype(float)
    out = intervals.paired_difference(a, a.copy(), resampler(), KEY)
    assert out.diff == 0 and out.low == 0 and out.high == 0 and out.p_value == 1.0


def test_a_method_right_where_the_other_misses_gives_the_exact_difference():
    b = np.array([1, 0] * 50, dtype=float)  # right on half the items
    a = np.ones(100)  # right on every item, including every one b misses
    out = intervals.paired_difference(a, b, resampler(), KEY)
    assert out.diff == pytest.approx(0.5) and out.n_items == 100
    assert 0.38 < out.low < 0.5 < out.high < 0.62  # the paired bootstrap of d in {0, 1}
    assert out.p_value == pytest.approx(1 / 4001)  # no sign flip reaches +50 points


def test_interval_and_p_value_agree_with_scipy():
    rng = np.random.default_rng(7)
    b = rng.integers(0, 2, 200).astype(float)
    a = np.where(rng.random(200) < 0.15, 1.0, b)  # a fixes some of b's misses
    ours = intervals.paired_difference(a, b, resampler(10_000), KEY)
    boot = stats.bootstrap(
        (a, b),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        paired=True,
        n_resamples=10_000,
        method="percentile",
        random_state=0,
    ).confidence_interval
    perm = stats.permutation_test(
        (a, b),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples",
        n_resamples=10_000,
        random_state=0,
    )
    assert ours.low == pytest.approx(boot.low, abs=0.01)
    assert ours.high == pytest.approx(boot.high, abs=0.01)
    assert ours.p_value == pytest.approx(perm.pvalue, abs=0.01)


def test_draws_are_fixed_by_the_seed_and_the_key_not_the_order():
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 2, (2, 150)).astype(float)
    first = intervals.paired_difference(a, b, resampler(), KEY)
    other = resampler()
    other.means(("x", "y", "z"), np.ones((150, 1)))  # another cell drawn first
    assert intervals.paired_difference(a, b, other, KEY) == first
    assert intervals.paired_difference(a, b, resampler(seed=1), KEY) != first


def test_cell_interval_resamples_items_and_seeds():
    scores = np.array([[1, 1, 0, 1] * 25, [1, 0, 0, 1] * 25])  # seeds at 75 % and 50 %
    low, high = intervals.cell_interval([(scores, KEY)], resampler(), ("m", "D", "v", "test"))
    # resampled seeds reach either seed's own accuracy: wider than the items alone would be
    assert 0.4 < low < 0.5 and 0.75 < high < 0.85
    constant = np.ones((3, 40))
    assert intervals.cell_interval([(constant, KEY)], resampler(), KEY) == (1.0, 1.0)


def test_selection_stability_is_certain_for_a_dominant_point_and_split_for_twins():
    rng = np.random.default_rng(0)
    weak = rng.integers(0, 2, 100).astype(float)
    strong = np.maximum(weak, rng.integers(0, 2, 100))  # right wherever weak is, and more
    assert intervals.selection_stability(np.stack([weak, strong]), 1, resampler(), KEY, [0, 1]) == 1
    twin = weak[::-1].copy()  # same accuracy, other items: either wins about half the time
    share = intervals.selection_stability(np.stack([weak, twin]), 0, resampler(), KEY, [0, 1])
    assert 0.3 < share < 0.7


# --- through metrics files and scripts/aggregate.py ------------------------------------------

PROMPTS = [f"item {i}" for i in range(40)]


def write_run(root, variant, seed, bits, split="test", strict=None, trained=True, prompts=None):
    run = root / "runs" / "m" / "D" / variant / f"seed{seed}"
    run.mkdir(parents=True, exist_ok=True)
    records = [{"prompt": p, "label": "A"} for p in prompts or PROMPTS]
    metrics = {
        "accuracy": sum(bits) / len(bits),
        "accuracy_strict": sum(strict or bits) / len(bits),
        "n": len(bits),
        "chance": 0.25,
        "correct_items": "".join(map(str, bits)),
        "correct_items_strict": "".join(map(str, strict or bits)),
        "items_sha256": items_digest(records),
        "provenance": {"protocol_version": 1},
    }
    path = run / f"{split}.metrics.json"
    path.write_text(json.dumps(metrics))
    if trained:
        (run / "checkpoint").mkdir(exist_ok=True)
        (run / "checkpoint" / "training.json").write_text(json.dumps({"objective": "sft"}))
    return path


def table_of(paths, compare_to=None):
    df = long_table(paths)
    chosen = select(df)
    verdicts, lacking = items.read_all(paths)
    best = selected_rows(df, chosen.table)
    found = comparisons.uncertainty(df, best, chosen.table, verdicts, compare_to, resampler(2000))
    return found.comparisons, found.warnings, lacking


def test_seed_averaged_items_over_the_seeds_both_have(tmp_path):
    lora = [1] * 20 + [0] * 20
    paths = [write_run(tmp_path, "lora", s, lora) for s in (0, 1)]
    paths += [write_run(tmp_path, "silu", 0, [1] * 40), write_run(tmp_path, "silu", 1, [1] * 40)]
    paths.append(write_run(tmp_path, "silu", 2, [0] * 40))  # lora lacks seed 2: not counted
    paths.append(write_run(tmp_path, "base", 0, [0] * 40, trained=False))
    out, warnings, _ = table_of(paths)
    assert not warnings
    silu = out[out["variant"] == "silu"].iloc[0]
    assert silu["reference"] == "lora" and silu["seeds"] == 2
    assert silu["diff"] == pytest.approx(50.0) and silu["n_items"] == 40
    base = out[out["variant"] == "base"].iloc[0]  # untrained: against every lora seed
    assert base["diff"] == pytest.approx(-50.0) and base["seeds"] == 1


def test_strict_columns_use_the_strict_verdicts(tmp_path):
    paths = [write_run(tmp_path, "lora", 0, [0] * 40)]
    paths.append(write_run(tmp_path, "silu", 0, [1] * 40, strict=[1] * 10 + [0] * 30))
    out, _, _ = table_of(paths)
    row = out.iloc[0]
    assert row["diff"] == pytest.approx(100.0) and row["diff_strict"] == pytest.approx(25.0)


def test_runs_on_different_items_are_never_paired(tmp_path):
    paths = [write_run(tmp_path, "lora", 0, [0] * 40)]
    paths.append(write_run(tmp_path, "silu", 0, [1] * 40, prompts=[f"x{i}" for i in range(40)]))
    out, warnings, _ = table_of(paths)
    assert out.empty and "silu vs lora: evaluated on different items" in warnings[0]


def test_old_metrics_fall_back_to_the_records_beside_them(tmp_path):
    path = write_run(tmp_path, "silu", 0, [1, 0] * 20)
    metrics = json.loads(path.read_text())
    for key in ("correct_items", "correct_items_strict", "items_sha256"):
        metrics.pop(key)
    path.write_text(json.dumps(metrics))
    assert items.read(path) is None  # neither verdicts nor records
    records = [{"prompt": p, "label": "A", "eval": i % 2 == 0} for i, p in enumerate(PROMPTS)]
    path.with_name("test.json").write_text("\n".join(json.dumps(r) for r in records))
    found = items.read(path)
    assert found.scores["accuracy"].tolist() == [1, 0] * 20
    assert found.digest == items_digest(records)


def test_aggregate_writes_comparisons_headline_and_forest_plots(tmp_path, monkeypatch, capsys):
    paths = []
    for split in ("validation", "test"):
        for seed in (0, 1):
            paths.append(write_run(tmp_path, "lora", seed, [1] * 10 + [0] * 30, split))
            paths.append(write_run(tmp_path, "silu@lr=0.1", seed, [1] * 30 + [0] * 10, split))
            paths.append(write_run(tmp_path, "silu@lr=0.2", seed, [1] * 5 + [0] * 35, split))
    done = run_aggregate(tmp_path, paths, "--resamples", "500", script=(monkeypatch, capsys))
    assert done.returncode == 0, done.stderr
    tables = tmp_path / "tables"
    compared = pd.read_csv(tables / "comparisons.csv")
    assert set(compared["split"]) == {"validation", "test"}
    assert compared["diff"].tolist() == pytest.approx([50.0, 50.0])
    assert (compared["resamples"] == 500).all() and (compared["bootstrap_seed"] == 0).all()
    assert "| m | D | test | silu | lora | +50.0 (" in (tables / "comparisons.md").read_text()
    summary = pd.read_csv(tables / "summary_test.csv")
    silu = summary[summary["variant"] == "silu"].iloc[0]
    assert silu["D low"] < 75 < silu["D high"]
    assert "75.0 ± 0.0 [" in (tables / "summary_test.md").read_text()
    headline = (tables / "headline.rst").read_text()
    assert ".. list-table:: summary_test" in headline and "diff vs lora" in headline
    assert (tmp_path / "plots" / "comparisons_D.png").stat().st_size > 1000
    chosen = pd.read_csv(tables / "selection.csv").set_index("variant")
    assert chosen.loc["silu", "point"] == "lr=0.1" and chosen.loc["silu", "stability"] == 1.0
    assert chosen.loc["silu", "test_low"] < 75 < chosen.loc["silu", "test_high"]
    assert pd.isna(chosen.loc["lora", "stability"])  # nothing to choose between
    bad = run_aggregate(tmp_path, paths, "--compare-to", "full", script=(monkeypatch, capsys))
    assert bad.returncode != 0 and "valid names: ['lora', 'silu']" in bad.stderr
