"""The benchmark scripts run end to end at the tiny shape and write complete result files.

Speeds are never asserted here (benchmarks/README.md records them); what is checked is that
each script does the comparison it claims: both sides measured, the sides' results agreeing,
and a result file with the command, setting, machine and versions.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--shape", "llama-tiny", "--batch", "2", "--seq-len", "16", "--repeats", "1"]


def bench(script: str, tmp_path: Path, *args: str) -> dict:
    out = tmp_path / f"{script}.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, f"benchmarks/{script}.py", *args, "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["command"].startswith(f"python benchmarks/{script}.py")
    assert {"machine", "versions", "setting", "rows", "date"} <= set(result)
    assert result["versions"]["torch"] and result["machine"]["device"] == "cpu"
    assert not list(tmp_path.glob("*.tmp"))  # written by rename
    return result


def test_ratio_is_the_median_of_same_round_ratios():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import harness
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    # Round 2 caught a burst of load on side a: the median ignores it, the bests do not pair.
    t = harness.Timing({"a": [2.0, 10.0, 3.0], "b": [1.0, 1.0, 1.5]}, {})
    assert t.ratio("a", "b") == 2.0 and t.best("a") == 2.0 and t.best("b") == 1.0
    calls = []
    sides = {name: (lambda name=name: calls.append(name) or name) for name in ("x", "y")}
    timing = harness.interleaved(sides, repeats=2, device="cpu", warmup=1)
    assert calls == ["x", "y", "y", "x", "x", "y"]  # order alternates round by round
    assert [len(v) for v in timing.times.values()] == [2, 2] and timing.values == {
        "x": "x",
        "y": "y",
    }


def test_a_result_names_no_machine_paths(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import harness
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    model, shared = ROOT / ".cache/models/m", ROOT.parent / "shared/data/ARC"
    monkeypatch.setattr(sys, "argv", ["benchmarks/x.py", "--arc-dir", str(shared)])
    setting = {"model": str(model), "dirs": [str(shared)], "n": 3}
    result = harness.write_result(tmp_path / "r.json", "q?", setting, rows=[])
    assert result["command"] == "python benchmarks/x.py --arc-dir ../shared/data/ARC"
    assert result["setting"] == {"model": ".cache/models/m", "dirs": ["../shared/data/ARC"], "n": 3}
    assert json.loads((tmp_path / "r.json").read_text())["setting"] == result["setting"]


def test_steering_overhead(tmp_path):
    r = bench("steering_overhead", tmp_path, *TINY)
    (row,) = r["rows"]
    assert row["base_s"] > 0 and row["steering_s"] > 0
    assert row["ratio"] == pytest.approx(row["steering_s"] / row["base_s"], rel=0.01)
    assert row["adapter_parameters"] == 2 * 8 * 64 * 2  # r * H * L * 2 matrices
    assert r["target"] == 1.10 and r["met"] == (row["ratio"] <= 1.10)


def test_lora_step(tmp_path):
    r = bench("lora_step", tmp_path, *TINY)
    (row,) = r["rows"]
    assert row["lora_params"] > row["steering_params"] > 0
    assert row["ratio"] == pytest.approx(row["steering_s"] / row["lora_s"], rel=0.01)


def test_eval_throughput(tmp_path):
    r = bench("eval_throughput", tmp_path, "--datasets", "BoolQ", "--n", "4", "--batch-size", "2")
    (row,) = r["rows"]
    assert row["identical_outputs"] == 1.0 and row["prompts"] == 4
    assert 0 < row["tokens_generated"] <= 4 * row["max_new_tokens"]
    assert r["overall_speedup"] == row["speedup"]


def test_last_token_step(tmp_path):
    r = bench("last_token_step", tmp_path, "--lengths", "16", "--batch", "2", "--repeats", "1")
    (row,) = r["rows"]
    assert row["losses_agree"] and row["naive_s"] > 0 and row["packed_s"] > 0


def test_peak_memory(tmp_path):
    r = bench("peak_memory", tmp_path, "--shape", "llama-tiny", "--batch", "2", "--seq-len", "16")
    (row,) = r["rows"]
    b = r["bytes"]
    assert b["peak"] >= b["after training"] > 0
    assert row["loaded_once"] == (b["after training"] - b["weights"] < 0.5 * b["weights"])
    assert b["weights"] == pytest.approx(row["parameters"] * 2, rel=0.05)  # bf16
    assert r["train_loss"] > 0


def test_dry_run(tmp_path):
    r = bench("dry_run", tmp_path, "--configfile", "config/test.yaml", "--repeats", "1")
    (row,) = r["rows"]
    assert row["jobs"] > 10 and row["dry_run_s"] > 0 and row["startup_s"] > 0


def test_precision_step(tmp_path):
    (row,) = bench("precision_step", tmp_path, *TINY)["rows"]
    assert row["bf16_trainables_float32"] and row["bf16_frozen_bfloat16"]
    assert row["bf16_over_fp32"] > 0 and row["tf32_over_fp32"] > 0


def test_memory_plan(tmp_path):
    args = ["--shape", "llama-tiny", "--batch", "2", "--seq-len", "16", "--steps", "1"]
    rows = bench("memory_plan", tmp_path, *args, "--methods", "steering", "full")["rows"]
    assert [r["method"] for r in rows] == ["steering", "full"]
    assert all(r["estimate_gib"] > 0 and r["measured_gib"] > 0 for r in rows)
    assert rows[1]["trainable"] > 10 * rows[0]["trainable"]  # every weight of the base


def test_gpu_acceptance_names_only_scripts_and_tests_that_exist():
    script = (ROOT / "benchmarks/gpu_acceptance.sh").read_text()
    named = ["benchmarks/precision_step.py", "benchmarks/eval_throughput.py"]
    named += ["benchmarks/memory_plan.py", "tests/test_gpu_lease.py", "tests/test_distributed.py"]
    for path in named:
        assert path in script and (ROOT / path).is_file(), path
    syntax = subprocess.run(["bash", "-n", str(ROOT / "benchmarks/gpu_acceptance.sh")])
    assert syntax.returncode == 0


def test_batch_order(tmp_path):
    from steering.loading.tiny import save_tiny_model

    save_tiny_model(tmp_path / "m", "llama", hidden_size=32, num_layers=2)
    data = str(ROOT / "tests" / "data" / "real" / "ARC_Challenge")
    r = bench(
        "batch_order",
        tmp_path,
        "--model",
        str(tmp_path / "m"),
        "--data-dir",
        data,
        "--rows",
        "16",
        "--bs",
        "4",
    )
    rows = {row["layout"]: row for row in r["rows"]}
    assert list(rows) == ["official_fixed", "official", "grouped", "packed", "grouped_packed"]
    fixed, official, grouped, packed, grouped_packed = rows.values()
    assert fixed["split_tokens_fed"] == r["split_rows"] * r["max_length"]
    assert packed["split_tokens_fed"] == r["split_real_tokens"]  # packing feeds the real tokens
    assert grouped_packed["epoch_tokens_fed"] == packed["epoch_tokens_fed"]  # in either order
    # padding per batch never feeds more than the fixed layout; grouping never more than random
    assert r["split_real_tokens"] <= grouped["split_tokens_fed"] <= official["split_tokens_fed"]
    assert official["split_tokens_fed"] < fixed["split_tokens_fed"]
    assert all(row["epoch_rows"] == 16 and row["epoch_s"] > 0 for row in rows.values())
    assert grouped["vs_official_fixed"] > 0
    # a subset: the ratio column is against the first layout timed
    args = ["--model", str(tmp_path / "m"), "--data-dir", data, "--rows", "8", "--bs", "4"]
    r = bench("batch_order", tmp_path, *args, "--layouts", "grouped", "grouped_packed")
    assert [row["layout"] for row in r["rows"]] == ["grouped", "grouped_packed"]
    assert r["rows"][0]["vs_grouped"] == 1.0 and r["rows"][1]["vs_grouped"] > 0


def test_fixed_cost(tmp_path):
    from steering.loading.tiny import save_tiny_model

    save_tiny_model(tmp_path / "m", "llama", hidden_size=32, num_layers=2)
    data = str(ROOT / "tests" / "data" / "real" / "ARC_Challenge")
    args = ["--model", str(tmp_path / "m"), "--data-dir", data, "--rows", "4", "--repeats", "1"]
    r = bench("fixed_cost", tmp_path, *args)
    seconds = {row["stage"]: row["median_s"] for row in r["rows"]}
    assert list(seconds)[:3] == ["interpreter", "train.py --help", "aggregate.py --help"]
    assert "train job: wall less train_runtime" in seconds
    whole = seconds["train job (4 rows), whole"]
    assert 0 < seconds["train job: wall less train_runtime"] < whole


def stand_in_for_smollm2(tmp_path: Path) -> list[str]:
    """``--model`` and ``--arc-dir`` for the real-model benchmarks: a saved tiny model stands in
    for SmolLM2, with ARC rows (synthetic, in the prepared format)."""
    from steering.loading.tiny import save_tiny_model
    from steering.tasks import get_task
    from steering.tasks.files import write_prepared

    save_tiny_model(tmp_path / "m", "llama", hidden_size=32, num_layers=2)
    task = get_task("ARC_Challenge")
    write_prepared(task, task.make_splits(task.synthetic(scale=0.05)), tmp_path / "arc", {"k": 1})
    return ["--model", str(tmp_path / "m"), "--arc-dir", str(tmp_path / "arc")]


def test_logits_step(tmp_path):
    """Both sides on real-format rows, tokenized as training does."""
    args = stand_in_for_smollm2(tmp_path)
    args += ["--shapes", "smollm2", "llama-tiny", "--batch", "2", "--repeats", "1"]
    rows = bench("logits_step", tmp_path, *args)["rows"]
    assert [r["case"] for r in rows] == ["smollm2", "llama-tiny"]
    assert all(r["losses_agree"] and r["all_s"] > 0 and r["supervised_s"] > 0 for r in rows)
    assert all(0 < r["supervised_share"] < 1 for r in rows)


def test_method_throughput(tmp_path):
    """Each method built by the registry trains a step and decodes the test prompts."""
    args = [*stand_in_for_smollm2(tmp_path), "--batch", "2", "--eval-rows", "3", "--repeats", "1"]
    rows = bench("method_throughput", tmp_path, *args)["rows"]
    assert [r["method"] for r in rows] == ["steering", "lora", "full"]
    steering, lora, full = (r["trainable"] for r in rows)
    assert 0 < steering < full and 0 < lora < full  # each trains what its method trains
    for r in rows:
        assert (
            r["train_tokens_per_s"] > 0 and r["train_fed_tokens_per_s"] >= r["train_tokens_per_s"]
        )
        assert r["eval_new_tokens"] > 0 and r["eval_new_tokens_per_s"] > 0
        # the batch ran as many steps as its longest row, so it computed at least what it kept
        assert 1 <= r["eval_steps"] <= 100
        assert 3 * r["eval_steps"] >= r["eval_new_tokens"]  # 3 rows
        assert r["eval_batch_tokens_per_s"] >= r["eval_new_tokens_per_s"] - 0.1  # rounding
        assert len(r["train_times_s"]) == len(r["eval_times_s"]) == 1  # the warm-up round dropped


def test_grpo_step(tmp_path):
    """Each method's GRPO steps, split into rollouts, rewards and the rest."""
    args = [*stand_in_for_smollm2(tmp_path), "--bs", "2", "--num-generations", "2"]
    args += ["--max-completion-length", "4", "--steps", "2", "--rows", "8"]
    rows = bench("grpo_step", tmp_path, *args)["rows"]
    assert [r["method"] for r in rows] == ["steering", "lora"]
    for r in rows:
        assert r["step_s"] > r["rollout_s"] > 0 and r["rewards_s"] > 0 and r["steps_timed"] == 1
        assert 0 < r["rollout_share"] < 1 and r["rollout_tokens_per_s"] > 0
        assert 0 < r["completion_tokens_per_step"] <= 2 * 4 * 4  # bs x 4 completions, 4 tokens


def test_grpo_start(tmp_path):
    """The untrained model's sampled completions scored with each task's rewards."""
    from steering.tasks import get_task
    from steering.tasks.files import write_prepared

    model = stand_in_for_smollm2(tmp_path)[:2]
    task = get_task("ARC_Challenge")
    rows = task.make_splits(task.synthetic(scale=0.05))
    write_prepared(task, rows, tmp_path / "data" / "ARC_Challenge", {"k": 1})
    args = [*model, "--data-root", str(tmp_path / "data"), "--tasks", "ARC_Challenge"]
    args += ["--prompts", "3", "--generations", "2", "--max-new-tokens", "4"]
    (row,) = bench("grpo_start", tmp_path, *args)["rows"]
    assert row["task"] == "ARC_Challenge" and row["prompts"] == 3 and row["new_tokens"] == 4
    for key in ("format_mean", "accuracy_mean", "accuracy_strict_mean", "groups_with_spread"):
        assert 0 <= row[key] <= 1


def test_decode_step(tmp_path):
    """The step of each cache timed against the bounds, with the same tokens either way."""
    model = stand_in_for_smollm2(tmp_path)[:2]
    data = str(ROOT / "tests" / "data" / "real" / "ARC_Challenge")
    args = [*model, "--data-dir", data, "--batches", "2", "--new-tokens", "3", "--repeats", "1"]
    r = bench("decode_step", tmp_path, *args, "--profile")
    (row,) = r["rows"]
    assert row["batch"] == 2 and row["same_tokens_static"] is True
    assert row["bandwidth_bound_ms"] > 0 and row["flop_bound_ms"] >= 0 and row["linears_ms"] > 0
    for cache in ("dynamic", "static"):
        step = row[f"step_ms_{cache}"]
        assert row[f"step_over_bound_{cache}"] == pytest.approx(
            step / row["bandwidth_bound_ms"], rel=0.02, abs=0.02
        )
    assert r["weight_bytes"] > 0 and sum(r["profile"]["share"].values()) == pytest.approx(1, 0.01)


def test_aggregate_time(tmp_path):
    """A generated tree of a grid's metrics, aggregated with every comparison."""
    r = bench("aggregate_time", tmp_path, "--configfile", "config/test.yaml")
    (row,) = r["rows"]
    assert row["metrics_files"] == 2 * row["runs"] > 0 and row["comparisons"] > 0
    assert row["aggregate_s"] > 0


def test_packed_memory(tmp_path):
    """The widest batch stepped packed and padded in fresh processes, the same loss."""
    from steering.loading.tiny import save_tiny_model

    save_tiny_model(tmp_path / "m", "llama", hidden_size=32, num_layers=2)
    data = str(ROOT / "tests" / "data" / "real" / "ARC_Challenge")
    args = ["--model", str(tmp_path / "m"), "--data-dir", data, "--rows", "8", "--bs", "4"]
    r = bench("packed_memory", tmp_path, *args, "--repeats", "1")
    padded, packed, ratio = r["rows"]
    assert (padded["layout"], packed["layout"]) == ("padded", "packed")
    assert packed["tokens_fed"] == packed["real_tokens"] <= padded["tokens_fed"]
    assert padded["rows"] == packed["rows"] == 4 and padded["step_peak_mib"] >= 0
    assert ratio["layout"] == "packed / padded"
