"""Selection over sweep points: the argmax of mean validation accuracy over seeds, ties,
incomplete points, test numbers kept out of the choice; the tables and plots built on it,
directly and through scripts/aggregate.py."""

import json
import math
from types import SimpleNamespace

import pandas as pd
import pytest

from steering.pipeline import comparisons, results, selection
from tests.workflow import ROOT, run_script


def long(rows):
    """A long table from (variant, point, seed, validation accuracy, test accuracy) rows."""
    out = []
    for variant, point, seed, val, test in rows:
        for split, acc in (("validation", val), ("test", test)):
            if acc is not None:
                out.append(
                    {
                        "model": "m",
                        "dataset": "BoolQ",
                        "variant": variant,
                        "point": point,
                        "seed": seed,
                        "split": split,
                        "accuracy": acc,
                        "trainable_share": 0.0004,
                    }
                )
    return pd.DataFrame(out)


A, B, C = "lr=0.001", "lr=0.002", "lr=0.003"
CASES = [
    pytest.param(
        [
            ("v", A, 0, 0.5, 0.9),
            ("v", A, 1, 0.7, 0.9),
            ("v", B, 0, 0.65, 0.1),
            ("v", B, 1, 0.65, 0.2),
        ],
        B,
        (65.0, 0.0, 15.0, pd.Series([10.0, 20.0]).std()),
        2,
        id="argmax-of-mean-validation-never-test",
    ),
    pytest.param(
        [
            ("v", A, 0, 0.9, 0.5),
            ("v", A, 1, 0.1, 0.5),
            ("v", B, 0, 0.6, 0.5),
            ("v", B, 1, 0.6, 0.5),
        ],
        B,
        (60.0, 0.0, 50.0, 0.0),
        2,
        id="mean-over-seeds-never-best-of-seeds",
    ),
    pytest.param(
        [
            ("v", B, 0, 0.6, 0.3),
            ("v", B, 1, 0.4, 0.3),
            ("v", A, 0, 0.5, 0.7),
            ("v", A, 1, 0.5, 0.7),
        ],
        A,
        (50.0, 0.0, 70.0, 0.0),
        2,
        id="tie-goes-to-the-smaller-rate",
    ),
    pytest.param(
        # 0.1 + 0.2 + 0.3 and 0.3 + 0.2 + 0.1 differ in the last bit: still a tie
        [("v", B, s, a, 0.2) for s, a in enumerate((0.1, 0.2, 0.3))]
        + [("v", A, s, a, 0.8) for s, a in enumerate((0.3, 0.2, 0.1))],
        A,
        (20.0, 10.0, 80.0, 0.0),
        2,
        id="tie-to-nine-decimals",
    ),
    pytest.param(
        [("v", A, 0, 0.4, 0.1), ("v", B, 0, 0.6, 0.2), ("v", C, 0, 0.5, 0.3)],
        B,
        (60.0, math.nan, 20.0, math.nan),
        3,
        id="one-seed",
    ),
    pytest.param(
        # B has the best validation mean but lacks seed 1: left out, never compared on one seed
        [("v", A, 0, 0.5, 0.4), ("v", A, 1, 0.5, 0.6), ("v", B, 0, 0.9, 0.9)],
        A,
        (50.0, 0.0, 50.0, pd.Series([40.0, 60.0]).std()),
        1,
        id="missing-seed-excludes-the-point",
    ),
    pytest.param(
        # C was run for another seed only: it lacks seed 0 and 1's validation here
        [("v", A, 0, 0.5, 0.5), ("v", A, 1, 0.5, 0.5), ("v", B, 0, 0.4, 0.1), ("v", B, 1, 0.4, 0.1)]
        + [("v", C, 2, None, 0.9)],
        None,
        None,
        None,
        id="no-point-complete",
    ),
    pytest.param(
        [("v", "", 0, None, 0.3), ("v", "", 1, None, 0.5)],
        "",
        (math.nan, math.nan, 40.0, pd.Series([30.0, 50.0]).std()),
        1,
        id="one-point-needs-no-validation",
    ),
]


@pytest.mark.parametrize("rows, point, numbers, competed", CASES)
def test_selection_table(rows, point, numbers, competed):
    chosen = selection.select(long(rows))
    if point is None:
        assert chosen.table.empty and len(chosen.unselected) == 1
        assert "no point has validation runs for every seed" in chosen.unselected[0]
        return
    (row,) = chosen.table.to_dict("records")
    assert row["point"] == point and row["points"] == competed
    got = (row["val_mean"], row["val_std"], row["test_mean"], row["test_std"])
    assert got == pytest.approx(numbers, nan_ok=True)


def test_an_incomplete_point_is_named():
    rows = CASES[5].values[0]
    chosen = selection.select(long(rows))
    assert chosen.incomplete == [
        "m/BoolQ/v@lr=0.002 lacks validation for seed(s) 1: left out of the selection"
    ]


def test_settings_order_is_numeric_then_words():
    labels = ["lr=0.01", "lr=0.002", "lr=0.002+reft_positions=last1", "activation=null"]
    assert sorted(labels[:2], key=selection.settings_order) == ["lr=0.002", "lr=0.01"]
    assert selection.settings_order("activation=null") < selection.settings_order("activation=silu")
    assert selection.settings_order("") == ()


def test_sweep_table_keeps_every_point_and_marks_the_selected():
    df = long(CASES[0].values[0])
    chosen = selection.select(df)
    table = selection.sweep_table(df, "validation", chosen.table)
    assert list(table["point"]) == [A, B] and list(table["selected"]) == [False, True]
    assert list(table["lr"]) == [0.001, 0.002] and list(table["mean"]) == pytest.approx([60, 65])


def test_summary_shows_the_selected_point_and_refuses_several():
    df = long(CASES[0].values[0])
    with pytest.raises(ValueError, match="has several sweep points"):
        results.summary_table(df, "test")
    best = selection.selected_rows(df, selection.select(df).table)
    summary = results.summary_table(best, "test").set_index("variant")
    assert summary.loc["v", "BoolQ"] == pytest.approx(15.0)
    assert summary.loc["v", "seeds"] == 2


# --- through scripts/aggregate.py, on metrics files ------------------------------------------

RATES = {"0.001": (0.40, 0.42), "0.002": (0.60, 0.58), "0.005": (0.50, 0.55)}  # val by seed


def write_runs(root, test_of=lambda val: val - 0.1):
    """Metrics files of a 3-point x 2-seed sweep and an unswept variant, on one dataset."""
    paths = []
    runs = {f"silu@lr={lr}": vals for lr, vals in RATES.items()} | {"vec": (0.3, 0.3)}
    for name, vals in runs.items():
        for seed, val in enumerate(vals):
            run = root / "runs" / "m" / "BoolQ" / name / f"seed{seed}"
            run.mkdir(parents=True, exist_ok=True)
            for split, acc in (("validation", val), ("test", test_of(val))):
                path = run / f"{split}.metrics.json"
                path.write_text(
                    json.dumps({"accuracy": acc, "n": 50, "provenance": {"protocol_version": 1}})
                )
                paths.append(path)
    return paths


def aggregate(tmp_path, paths, *flags, script=None):
    """scripts/aggregate.py in this process (``script``: monkeypatch, capsys), asserting
    success; (the output directory, its stdout and stderr)."""
    out = tmp_path / "out"
    args = ["--metrics", *paths, "--out-dir", out / "tables", "--plots-dir", out / "plots"]
    code, err, stdout = run_script("aggregate.py", [*args, *flags], *script, ROOT)
    assert code == 0, err
    return out, SimpleNamespace(stdout=stdout, stderr=err)


def test_aggregate_writes_the_selection_and_summaries_of_the_selected_point(
    tmp_path, monkeypatch, capsys
):
    out, proc = aggregate(tmp_path, write_runs(tmp_path / "a"), script=(monkeypatch, capsys))
    sel = pd.read_csv(out / "tables/selection.csv", keep_default_na=False)
    assert list(sel.columns) == selection.SELECTION_COLUMNS + comparisons.SELECTION_EXTRA
    silu = sel.set_index("variant").loc["silu"]
    assert silu["point"] == "lr=0.002" and silu["points"] == 3 and silu["seeds"] == 2
    assert silu["test_mean"] == pytest.approx(100 * (0.60 + 0.58) / 2 - 10)
    assert sel.set_index("variant").loc["vec", "point"] == ""
    summary = pd.read_csv(out / "tables/summary_test.csv").set_index("variant")
    assert summary.loc["silu", "BoolQ"] == pytest.approx(silu["test_mean"])
    assert summary.loc["silu", "BoolQ std"] == pytest.approx(silu["test_std"])
    assert len(summary) == 2  # one row per model x variant, as in the paper's tables
    validation = pd.read_csv(out / "tables/summary_validation.csv").set_index("variant")
    assert validation.loc["silu", "BoolQ"] == pytest.approx(silu["val_mean"])
    sweep = pd.read_csv(out / "tables/sweep_test.csv")
    assert len(sweep) == 4 and sweep["selected"].sum() == 2
    long_table = pd.read_csv(out / "tables/long.csv", keep_default_na=False)
    assert set(long_table["point"]) == {"lr=0.001", "lr=0.002", "lr=0.005", ""}
    assert (out / "plots/sweep_BoolQ.png").read_bytes()[:4] == b"\x89PNG"
    for split in ("validation", "test"):  # the strict parser's summaries, same selection
        strict = pd.read_csv(out / f"tables/summary_{split}_strict.csv").set_index("variant")
        assert list(strict.index) == list(summary.index)
    assert "selected m/BoolQ/silu: lr=0.002 of 3 points" in proc.stdout
    md = (out / "tables/selection.md").read_text()
    assert "| m | BoolQ | silu | lr=0.002 | 59.0 ± 1.4 | 49.0 ± 1.4 | 2 | 3 |" in md


def test_test_numbers_never_change_the_choice(tmp_path, monkeypatch, capsys):
    """Rewrite every test metric (reversed ranking, then random): selection.csv's choice
    stays, only its test columns move."""
    script = (monkeypatch, capsys)
    first, _ = aggregate(tmp_path / "one", write_runs(tmp_path / "a"), script=script)
    flipped = write_runs(tmp_path / "b", lambda val: 1 - val)
    second, _ = aggregate(tmp_path / "two", flipped, script=script)
    a = pd.read_csv(first / "tables/selection.csv", keep_default_na=False)
    b = pd.read_csv(second / "tables/selection.csv", keep_default_na=False)
    keep = ["model", "dataset", "variant", "point", "val_mean", "val_std", "seeds", "points"]
    pd.testing.assert_frame_equal(a[keep], b[keep])
    assert not a["test_mean"].equals(b["test_mean"])


def test_a_point_missing_a_seed_is_named_and_left_out(tmp_path, monkeypatch, capsys):
    paths = write_runs(tmp_path / "a")
    gone = [p for p in paths if "lr=0.002/seed1/validation" in str(p)]
    kept = [p for p in paths if p not in gone]
    out, proc = aggregate(tmp_path, kept, script=(monkeypatch, capsys))
    assert "warning: m/BoolQ/silu@lr=0.002 lacks validation for seed(s) 1" in proc.stderr
    sel = pd.read_csv(out / "tables/selection.csv").set_index("variant")
    assert sel.loc["silu", "point"] == "lr=0.005" and sel.loc["silu", "points"] == 2
    assert "lacks validation for seed(s) 1" in (out / "tables/selection.md").read_text()
    missing = pd.read_csv(out / "tables/missing.csv")
    assert list(missing[["point", "seed", "split"]].itertuples(index=False, name=None)) == [
        ("lr=0.002", 1, "validation")
    ]
    args = ["--metrics", *paths[:-1], "--out-dir", tmp_path / "strict", "--require-complete"]
    code, err, _ = run_script("aggregate.py", args, monkeypatch, capsys, ROOT)
    assert code == 2 and "run splits missing" in err
    assert not (tmp_path / "strict").exists()
