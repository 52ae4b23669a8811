"""Aggregation on hand-made metrics files: long table, mean +/- std, references, formats, plots."""

import json
import math
from types import SimpleNamespace

import pandas as pd
import pytest

from steering.pipeline import plots, results, selection
from steering.tasks import TASKS
from tests.workflow import ROOT, run_script

ACC = {  # (model, dataset, variant, seed) -> test accuracy
    ("llama", "BoolQ", "silu", 0): 0.80,
    ("llama", "BoolQ", "silu", 1): 0.90,
    ("llama", "GSM8K", "silu", 0): 0.30,
    ("llama", "GSM8K", "silu", 1): 0.20,
    ("llama", "BoolQ", "base", 0): 0.50,
    ("llama", "GSM8K", "base", 0): 0.10,
}


def make_runs(root, acc=ACC, protocol=1, order="official"):
    paths = []
    for (model, dataset, variant, seed), a in acc.items():
        run = root / "runs" / model / dataset / variant / f"seed{seed}"
        run.mkdir(parents=True, exist_ok=True)
        for split, value in (("test", a), ("validation", a / 2)):
            path = run / f"{split}.metrics.json"
            right = round(100 * value)  # per-item verdicts, as evaluations now record them
            path.write_text(
                json.dumps(
                    {
                        "accuracy": value,
                        "correct_items": "1" * right + "0" * (100 - right),
                        "items_sha256": f"{dataset}-{split}",
                        "n": 100,
                        "tokens_per_s": 50.0,
                        "provenance": {"protocol_version": protocol, "git_commit": "abc"},
                    }
                )
            )
            paths.append(path)
        if variant != "base":
            (run / "checkpoint").mkdir(exist_ok=True)
            (run / "checkpoint" / "training.json").write_text(
                json.dumps(
                    {
                        "trainable_parameters": 524288,
                        "trainable_share": 0.000424,
                        "train_runtime_s": 12.5,
                        **({"batch_order": order} if order else {}),
                    }
                )
            )
    return paths


def test_long_table_rows_and_columns(tmp_path):
    df = results.long_table(make_runs(tmp_path))
    assert list(df.columns) == results.LONG_COLUMNS and len(df) == 12
    row = df[
        (df.variant == "silu") & (df.dataset == "BoolQ") & (df.seed == 1) & (df.split == "test")
    ].iloc[0]
    assert (row.accuracy, row.n, row.trainable_parameters, row.train_time_s) == (
        0.9,
        100,
        524288,
        12.5,
    )
    base = df[df.variant == "base"].iloc[0]
    assert base.trainable_parameters == 0 and base.trainable_share == 0.0
    # runs from before packing padded their batches; the base trained none
    assert set(df[df.variant == "silu"].batch_layout) == {"padded"} and pd.isna(base.batch_layout)
    assert set(df.protocol_version) == {1} and set(df.git_commit) == {"abc"}


def test_summary_mean_std_average_and_references(tmp_path):
    df = results.long_table(make_runs(tmp_path))
    refs = {"models": {"llama": "Llama-3.2-1B"}, "variants": {"silu": "post-block r=8 SiLU"}}
    s = results.summary_table(df, "test", refs).set_index("variant")
    assert s.loc["silu", "BoolQ"] == pytest.approx(85.0)
    assert s.loc["silu", "BoolQ std"] == pytest.approx(pd.Series([80.0, 90.0]).std())
    assert s.loc["silu", "GSM8K"] == pytest.approx(25.0)
    assert s.loc["silu", "Average"] == pytest.approx(55.0)  # per seed (55, 55) -> mean 55
    assert s.loc["silu", "Average std"] == pytest.approx(0.0)
    assert s.loc["silu", "BoolQ paper"] == 87.5 and s.loc["silu", "GSM8K paper"] == 31.0
    assert pd.isna(s.loc["base", "BoolQ paper"]) and s.loc["base", "seeds"] == 1
    assert pd.isna(s.loc["base", "BoolQ std"]) and s.loc["base", "Average"] == pytest.approx(30.0)
    assert s.loc["silu", "Average paper"] == pytest.approx((87.5 + 31.0) / 2)


def test_markdown_and_latex(tmp_path):
    df = results.long_table(make_runs(tmp_path))
    refs = {"models": {"llama": "Llama-3.2-1B"}, "variants": {"silu": "post-block r=8 SiLU"}}
    summary = results.summary_table(df, "test", refs)
    md = results.to_markdown(summary).splitlines()
    assert md[0] == (
        "| model | variant | params % | BoolQ | BoolQ (paper) | GSM8K | GSM8K (paper) "
        "| Average | Average (paper) |"
    )
    assert md[2] == "| llama | base | 0 | 50.0 | - | 10.0 | - | 30.0 | - |"
    assert (
        md[3]
        == "| llama | silu | 0.0424 | 85.0 ± 7.1 | 87.5 | 25.0 ± 7.1 | 31.0 | 55.0 ± 0.0 | 59.2 |"
    )
    tex = results.to_latex(summary)
    assert "\\toprule" in tex and "85.0 $\\pm$ 7.1" in tex and "params \\%" in tex


@pytest.mark.parametrize("order", ["length-grouped", None])  # None: a run from before the key
def test_rows_trained_on_length_grouped_batches_are_marked(tmp_path, order):
    df = results.long_table(make_runs(tmp_path, order=order))
    assert set(df[df.variant == "silu"].batch_order) == {"length-grouped"}
    assert df[df.variant == "base"].batch_order.isna().all()
    summary = results.summary_table(df, "test")
    md = results.to_markdown(summary)
    assert "| llama | silu † |" in md and "| llama | base |" in md
    assert "† trained on length-grouped batches" in md
    assert "silu \\textsuperscript{\\dag}" in results.to_latex(summary)
    official = results.summary_table(results.long_table(make_runs(tmp_path / "o")), "test")
    assert "†" not in results.to_markdown(official)


def test_missing_dataset_leaves_the_average_empty(tmp_path):
    acc = dict(ACC)
    del acc["llama", "GSM8K", "base", 0]
    s = results.summary_table(results.long_table(make_runs(tmp_path, acc)), "test").set_index(
        "variant"
    )
    assert math.isnan(s.loc["base", "GSM8K"]) and math.isnan(s.loc["base", "Average"])
    assert "| llama | base | 0 | 50.0 | - | - |" in results.to_markdown(s.reset_index())


def test_mixed_protocol_versions_are_refused(tmp_path):
    paths = make_runs(tmp_path)
    old = make_runs(tmp_path / "old", {("llama", "BoolQ", "vec", 0): 0.5}, protocol=0)
    with pytest.raises(
        ValueError, match=r"refusing to aggregate BoolQ: .*\[0, 1\].*llama/vec/seed0"
    ):
        results.long_table(paths + old)


def test_bad_paths_and_files(tmp_path):
    with pytest.raises(ValueError, match="not a run metrics file"):
        results.parse_metrics_path(tmp_path / "x.json")
    bad = tmp_path / "runs" / "m" / "BoolQ" / "v" / "seed0" / "test.metrics.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{")
    with pytest.raises(ValueError, match="cannot read metrics file"):
        results.long_table([bad])


def test_plots_are_png(tmp_path):
    df = results.long_table(make_runs(tmp_path))
    plots.plot_accuracy_by_variant(df, tmp_path / "a.png")
    plots.plot_accuracy_vs_share(df, tmp_path / "b.png")
    for name in ("a.png", "b.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def grid_of(models: int, variants: int) -> pd.DataFrame:
    """A long table of ``models`` x ``variants`` x six tasks x two seeds, test split."""
    rows = []
    for m in range(models):
        for v in range(variants):
            for d, dataset in enumerate(TASKS):
                for seed in (0, 1):
                    acc = 0.3 + 0.6 * ((7 * m + 3 * v + d + seed) % 11) / 10
                    share = 0.0 if v == 0 else 10.0 ** (-4 + v % 5) / 100
                    rows.append(
                        {"model": f"model-{m}-of-a-long-name", "dataset": dataset, "seed": seed}
                        | {"variant": f"variant_{v}", "point": "", "split": "test"}
                        | {"accuracy": acc, "trainable_share": share}
                    )
    return pd.DataFrame(rows)


def drawn_texts(fig):
    """The visible, non-empty texts of ``fig`` as drawn: (text, window box) pairs."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    renderer = FigureCanvasAgg(fig).get_renderer()  # the closed figure, drawn again
    fig.draw(renderer)
    hidden = set()  # tick labels outside the view limits exist but are never drawn
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            hidden |= {
                id(label)
                for tick in axis.get_major_ticks() + axis.get_minor_ticks()
                if not lo <= tick.get_loc() <= hi
                for label in (tick.label1, tick.label2)
            }
    return [
        (t.get_text(), t.get_window_extent(renderer))
        for t in fig.findobj(Text)
        if t.get_visible() and t.get_text().strip() and id(t) not in hidden
    ]


def overlapping_texts(fig) -> list[tuple[str, str]]:
    """Pairs of drawn texts of ``fig`` whose boxes overlap."""
    boxes = drawn_texts(fig)
    return [
        (a, b)
        for i, (a, box) in enumerate(boxes)
        for b, other in boxes[i + 1 :]
        if box.overlaps(other)
    ]


def texts_off_canvas(fig) -> list[str]:
    """Drawn texts of ``fig`` that reach past the figure's edges (a pixel of tolerance)."""
    edge = fig.bbox
    return [
        text
        for text, box in drawn_texts(fig)
        if min(box.x0 - edge.x0, box.y0 - edge.y0, edge.x1 - box.x1, edge.y1 - box.y1) < -1
    ]


def readable(fig) -> None:
    """The plot checks: no text on top of another, none leaving the canvas."""
    assert overlapping_texts(fig) == []
    assert texts_off_canvas(fig) == []


@pytest.mark.parametrize("models, variants", [(1, 4), (4, 9)])
def test_plots_are_readable_with_one_model_or_four(tmp_path, models, variants):
    """No label on top of another or off the canvas, titles that name the split and the
    metric."""
    df = grid_of(models, variants)
    by_variant = plots.plot_accuracy_by_variant(df, tmp_path / "a.png")
    vs_share = plots.plot_accuracy_vs_share(df, tmp_path / "b.png")
    for fig in (by_variant, vs_share):
        readable(fig)
        title = " ".join(t.get_text() for t in fig.findobj() if hasattr(t, "get_text"))
        assert "test accuracy" in title


def sweep_grid(models: int, variants: int, dataset: str) -> pd.DataFrame:
    """A long table of ``variants`` variants each swept over three learning rates, both
    splits, two seeds, on ``dataset``."""
    rows = []
    for m in range(models):
        for v in range(variants):
            for i, lr in enumerate((0.0009, 0.003, 0.009)):
                for split in ("validation", "test"):
                    for seed in (0, 1):
                        acc = 0.2 + 0.6 * ((5 * m + 3 * v + 2 * i + seed) % 7) / 6
                        rows.append(
                            {"model": f"model-{m}-of-a-long-name", "dataset": dataset}
                            | {"variant": f"variant_{v}_with_a_long_name", "seed": seed}
                            | {"point": f"lr={lr}", "split": split, "accuracy": acc}
                        )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("models, variants", [(1, 1), (4, 1), (4, 5)])
@pytest.mark.parametrize("dataset", ["BoolQ", "ARC_Challenge_with_a_much_longer_dataset_name"])
def test_sweep_plots_fit_their_canvas(tmp_path, models, variants, dataset):
    """The narrowest sweep figure (one panel) keeps its whole title: it is wrapped, not cut
    at both ends (the title once read "oolQ: validation and test accuracy ... dots: seed")."""
    df = sweep_grid(models, variants, dataset)
    fig = plots.plot_sweep(df, selection.select(df).table, dataset, tmp_path / "s.png")
    readable(fig)
    title = " ".join(fig._suptitle.get_text().split())
    assert title.startswith(f"{dataset}: validation and test accuracy")
    assert title.endswith("dots: seeds)")


def test_long_dataset_names_fit_the_accuracy_plot(tmp_path):
    df = grid_of(4, 3)
    df["dataset"] = df["dataset"] + "_with_a_long_suffix"
    readable(plots.plot_accuracy_by_variant(df, tmp_path / "a.png"))
    empty = sweep_grid(1, 1, "ARC_Challenge_with_a_much_longer_dataset_name")
    empty["point"] = ""
    readable(
        plots.plot_sweep(
            empty, selection.select(empty).table, empty["dataset"][0], tmp_path / "e.png"
        )
    )


@pytest.mark.parametrize(
    "values, limits",
    [([0, 0], (0, 20)), ([50, 52], (41, 61)), ([98, 100], (80, 100)), ([10, 90], (5, 95))],
)
def test_accuracy_axes_stay_within_0_and_100(values, limits):
    assert plots._accuracy_limits(pd.Series(values, dtype=float)) == limits


@pytest.mark.parametrize(
    "drop, missing",
    [
        ([], []),  # the full grid (base evaluated once, seed 0)
        ([("llama", "GSM8K", "silu", 1)], ["llama/GSM8K/silu/seed1"]),  # a seed of one cell
        ([("llama", "BoolQ", "base", 0)], ["llama/BoolQ/base/seed0"]),  # a whole base cell
    ],
)
def test_missing_runs_are_found(tmp_path, drop, missing):
    acc = {k: v for k, v in ACC.items() if k not in drop}
    found = results.missing_runs(results.long_table(make_runs(tmp_path, acc)))
    got = sorted({f"{r.model}/{r.dataset}/{r.variant}/seed{r.seed}" for r in found.itertuples()})
    assert got == missing
    assert len(found) == 2 * len(missing)  # both splits of each


def test_missing_model_variant_is_found(tmp_path):
    # A second model evaluated for base only: its silu runs (2 seeds x 2 datasets) are missing.
    acc = {**ACC, ("qwen", "BoolQ", "base", 0): 0.4, ("qwen", "GSM8K", "base", 0): 0.1}
    found = results.missing_runs(results.long_table(make_runs(tmp_path, acc)))
    assert set(found["model"]) == {"qwen"} and set(found["variant"]) == {"silu"}
    assert len(found) == 2 * 2 * 2
    assert results.describe_missing(found, limit=2).startswith("8 run splits missing")


def run_aggregate(tmp_path, paths, *flags, script):
    """scripts/aggregate.py in this process (``script``: monkeypatch, capsys)."""
    args = [
        "--metrics",
        *paths,
        "--out-dir",
        tmp_path / "tables",
        "--plots-dir",
        tmp_path / "plots",
    ]
    code, err, out = run_script("aggregate.py", [*args, *flags], *script, ROOT)
    return SimpleNamespace(returncode=code, stderr=err, stdout=out)


def test_aggregate_script_reports_missing_runs(tmp_path, monkeypatch, capsys):
    acc = {k: v for k, v in ACC.items() if k != ("llama", "GSM8K", "silu", 1)}
    paths, script = make_runs(tmp_path, acc), (monkeypatch, capsys)
    strict = run_aggregate(tmp_path, paths, "--require-complete", script=script)
    assert strict.returncode == 2 and not (tmp_path / "tables").exists()
    assert "error: 2 run splits missing from the grid: llama/GSM8K/silu/seed1" in strict.stderr
    assert "Traceback" not in strict.stderr
    warned = run_aggregate(tmp_path, paths, script=script)
    assert warned.returncode == 0 and "warning: 2 run splits missing" in warned.stderr
    listed = pd.read_csv(tmp_path / "tables" / "missing.csv")
    assert sorted(listed["split"]) == ["test", "validation"] and set(listed["seed"]) == {1}
    complete = run_aggregate(tmp_path, make_runs(tmp_path / "all"), script=script)
    assert complete.returncode == 0 and "warning" not in complete.stderr
    assert pd.read_csv(tmp_path / "tables" / "missing.csv").empty  # no stale list left


def test_strict_accuracy_has_its_own_summary(tmp_path):
    paths = make_runs(tmp_path)
    for path in paths:  # the strict parser finds 10 points more on every run
        metrics = json.loads(path.read_text())
        path.write_text(json.dumps({**metrics, "accuracy_strict": metrics["accuracy"] + 0.1}))
    df = results.long_table(paths)
    assert (df["accuracy_strict"] - df["accuracy"]).round(9).eq(0.1).all()
    official = results.summary_table(df, "test").set_index("variant")
    strict = results.summary_table(df, "test", metric="accuracy_strict").set_index("variant")
    assert strict.loc["silu", "BoolQ"] == pytest.approx(official.loc["silu", "BoolQ"] + 10)
    assert strict.loc["silu", "Average"] == pytest.approx(official.loc["silu", "Average"] + 10)


def test_runs_from_before_the_strict_parser_leave_its_cells_empty(tmp_path):
    df = results.long_table(make_runs(tmp_path))  # metrics files without accuracy_strict
    assert df["accuracy_strict"].isna().all()
    strict = results.summary_table(df, "test", metric="accuracy_strict").set_index("variant")
    assert math.isnan(strict.loc["silu", "BoolQ"]) and math.isnan(strict.loc["silu", "Average"])
    assert "| llama | silu | 0.0424 | - | - | - |" in results.to_markdown(strict.reset_index())


def test_chance_and_base_rows_head_each_model_in_the_summary(tmp_path):
    paths = make_runs(tmp_path)
    for path in paths:  # 50 % guessing on BoolQ, 25 % on GSM8K
        metrics = json.loads(path.read_text())
        metrics["chance"] = 0.5 if "/BoolQ/" in path.as_posix() else 0.25
        path.write_text(json.dumps(metrics))
    summary = results.summary_table(results.long_table(paths), "test")
    llama = summary[summary["model"] == "llama"]
    assert list(llama["variant"])[:2] == ["chance", "base"]
    chance = llama.iloc[0]
    assert (chance["BoolQ"], chance["GSM8K"], chance["Average"]) == (50.0, 25.0, 37.5)
    assert "| llama | chance | - | 50.0 |" in results.to_markdown(summary)
    # metrics from before the field: no chance row
    old = results.summary_table(results.long_table(make_runs(tmp_path / "old")), "test")
    assert "chance" not in set(old["variant"])


def grpo_runs(root):
    """``make_runs`` with the silu runs trained by GRPO: ``objective`` and a reward history
    in their ``training.json``, as ``train_grpo`` writes it."""
    paths = make_runs(root)
    for seed in (0, 1):
        for dataset in ("BoolQ", "GSM8K"):
            path = root / "runs" / "llama" / dataset / "silu" / f"seed{seed}" / "checkpoint"
            training = json.loads((path / "training.json").read_text())
            history = [
                {"step": s, "reward": 0.5 * s + seed, "rewards/accuracy/mean": 0.25 * s}
                for s in (1, 2, 3)
            ]
            training |= {"objective": "grpo", "reward_history": history}
            (path / "training.json").write_text(json.dumps(training))
    return paths


def test_grpo_rows_are_marked_and_their_reward_curves_kept(tmp_path):
    df = results.long_table(grpo_runs(tmp_path))
    assert set(df[df.variant == "silu"].objective) == {"grpo"}
    assert df[df.variant == "base"].objective.isna().all()
    summary = results.summary_table(df, "test")
    md = results.to_markdown(summary)
    assert "| llama | silu (GRPO) |" in md and "| llama | base |" in md
    assert "(GRPO) trained with GRPO" in md and "silu (GRPO)" in results.to_latex(summary)
    sft = results.long_table(make_runs(tmp_path / "sft"))  # training.json without the key
    assert set(sft[sft.variant == "silu"].objective) == {"sft"}
    assert "GRPO" not in results.to_markdown(results.summary_table(sft, "test"))
    # one curve per run (not per split), in step order
    curves = results.reward_curves(grpo_runs(tmp_path / "c"))
    assert len(curves) == 2 * 2 * 3 and set(curves.variant) == {"silu"}
    one = curves[(curves.dataset == "BoolQ") & (curves.seed == 1)]
    assert list(one.step) == [1, 2, 3] and list(one.reward) == [1.5, 2.0, 2.5]
    assert list(one["rewards/accuracy/mean"]) == [0.25, 0.5, 0.75]
    assert list(results.reward_curves(make_runs(tmp_path / "none")).columns) == [
        *results.RUN_KEY[:-1],
        "step",
        "reward",
    ]


def test_reward_plot_is_readable_and_says_when_there_is_nothing(tmp_path):
    curves = results.reward_curves(grpo_runs(tmp_path))
    readable(plots.plot_rewards(curves, tmp_path / "rewards.png"))
    assert (tmp_path / "rewards.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = plots.plot_rewards(results.reward_curves([]), tmp_path / "none.png")
    assert [t for t, _ in drawn_texts(empty)] == ["no run of this grid trained with GRPO"]


def test_aggregate_writes_the_reward_curves(tmp_path, monkeypatch, capsys):
    done = run_aggregate(tmp_path, grpo_runs(tmp_path), script=(monkeypatch, capsys))
    assert done.returncode == 0, done.stderr
    curves = pd.read_csv(tmp_path / "tables" / "rewards.csv")
    assert len(curves) == 12 and (tmp_path / "plots" / "rewards.png").is_file()
    assert "silu (GRPO)" in (tmp_path / "tables" / "summary_test.md").read_text()
