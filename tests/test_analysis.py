"""The oracle-shift analysis (steering/analysis/oracle.py, approximations.py, analysis.py): its
equations on tiny models, its bad-input errors, its plots, and a Snakemake run of a tiny grid
with full fine-tuning, steering, LoRA and the analysis job."""

import copy
import json

import pandas as pd
import pytest
import torch

from steering.analysis import approximations as approx
from steering.analysis import oracle
from steering.analysis import plots as analysis_plots
from steering.analysis import run as analysis
from steering.architectures import decoder_layers
from steering.config import SteeringConfig
from steering.loading.tiny import tiny_model
from steering.model import SteeredModel
from tests.test_results import overlapping_texts

H, LAYERS = 32, 3


def perturbed(model, where=lambda name: True, scale=0.05, seed=1):
    """A copy of ``model`` whose parameters named ``where`` moved by noise (a stand-in F)."""
    g = torch.Generator().manual_seed(seed)
    out = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in out.named_parameters():
            if where(name):
                p.add_(torch.randn(p.shape, generator=g) * scale * p.std())
    return out


@pytest.fixture(scope="module")
def base():
    return tiny_model("llama", hidden_size=H, num_layers=LAYERS, initializer_range=0.3)


@pytest.fixture(scope="module")
def finetuned(base):
    return perturbed(base)  # blocks, embeddings and final norm all moved


@pytest.fixture(scope="module")
def batches():
    g = torch.Generator().manual_seed(2)
    out = []
    for _ in range(2):
        ids = torch.randint(3, 500, (3, 11), generator=g)
        mask = torch.ones_like(ids)
        mask[0, 8:] = 0  # a padded row
        predicts = torch.zeros_like(ids, dtype=torch.bool)
        predicts[:, 4:7] = True  # the positions that predict completion tokens
        out.append(oracle.RowBatch(ids, mask, predicts))
    return out


def oracle_shifts(base, finetuned, batch):
    found = {}

    def keep(layer, block_out, delta, d_attn, d_mlp):
        found[layer] = (block_out, delta, d_attn, d_mlp)

    logits = oracle.oracle_forward(base, finetuned, batch, keep)
    return logits, found


def logits_of(model, batch):
    with torch.no_grad():
        return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits


def test_the_full_oracle_reproduces_the_finetuned_logits(base, finetuned, batches):
    batch = batches[0]
    f_logits, found = oracle_shifts(base, finetuned, batch)
    torch.testing.assert_close(f_logits, logits_of(finetuned, batch))
    deltas = {layer: parts[1] for layer, parts in found.items()}
    with oracle.finetuned_frame(base, finetuned), oracle.shifted(base, lambda i, h: deltas[i]):
        shifted = logits_of(base, batch)
    real = batch.attention_mask.bool()
    torch.testing.assert_close(shifted[real], f_logits[real], atol=1e-5, rtol=0)
    # the frame is put back: the base model computes as before
    assert not torch.allclose(logits_of(base, batch), f_logits, atol=1e-3)
    torch.testing.assert_close(logits_of(base, batch), logits_of(copy.deepcopy(base), batch))


def test_attention_and_mlp_parts_sum_to_the_shift(base, finetuned, batches):
    _, found = oracle_shifts(base, finetuned, batches[0])
    for _, delta, d_attn, d_mlp in found.values():
        assert delta.abs().max() > 1e-3
        torch.testing.assert_close(d_attn + d_mlp, delta, atol=1e-5, rtol=0)


def test_an_mlp_only_change_is_all_mlp(base, batches):
    mlp_only = perturbed(base, lambda n: ".mlp." in n)
    stats = analysis.statistics(base, mlp_only, batches, log=lambda *_: None)
    _, found = oracle_shifts(base, mlp_only, batches[0])
    for _, _, d_attn, _ in found.values():
        assert torch.equal(d_attn, torch.zeros_like(d_attn))
    for layer in range(LAYERS):
        row = stats.layer_row(layer)
        assert row["attn_share"] == 0
        assert row["mlp_share"] == pytest.approx(1, abs=1e-6)  # float32 sums
        assert row["mlp_cosine"] == pytest.approx(1, abs=1e-6)


def test_an_attention_only_change_moves_the_mlp_input(base, batches):
    """d_mlp = MLP(x + a^F) - MLP(x + a^B): not zero, as the equations say."""
    attn_only = perturbed(base, lambda n: ".self_attn." in n, scale=0.3)
    batch = batches[0]
    _, found = oracle_shifts(base, attn_only, batch)
    inputs = {}
    hooks = [
        layer.register_forward_pre_hook(lambda m, a, i=i: inputs.__setitem__(i, a[0]))
        for i, layer in enumerate(decoder_layers(attn_only))
    ]
    logits_of(attn_only, batch)
    for h in hooks:
        h.remove()
    for i, (_, delta, d_attn, d_mlp) in found.items():
        layer = decoder_layers(base)[i]
        x = inputs[i]
        a_f = x + (delta - d_mlp) + _attn(layer, x)  # x + a^F, as d_attn = a^F - a^B
        a_b = x + _attn(layer, x)
        expected = _mlp(layer, a_f) - _mlp(layer, a_b)
        real = batch.attention_mask.bool()  # _run_block's causal mask ignores the padding
        torch.testing.assert_close(d_mlp[real], expected[real], atol=1e-5, rtol=0)
        assert d_mlp.abs().max() > 1e-4
        torch.testing.assert_close(d_attn + d_mlp, delta, atol=1e-5, rtol=0)


def _attn(layer, x):
    """B's attention branch a^B(x) of a Llama block, via the block itself with its MLP off."""
    held = layer.mlp.forward
    layer.mlp.forward = lambda h: torch.zeros_like(h)
    try:
        out = _run_block(layer, x)
    finally:
        layer.mlp.forward = held
    return out - x


def _run_block(layer, x):
    S = x.shape[1]
    model = _run_block.model
    pos = torch.arange(S)[None]
    emb = model.model.rotary_emb(x, pos)
    mask = torch.full((S, S), float("-inf")).triu(1)[None, None]
    out = layer(x, attention_mask=mask, position_embeddings=emb, position_ids=pos)
    return out[0] if isinstance(out, tuple) else out


def _mlp(layer, h):
    return layer.mlp(layer.post_attention_layernorm(h))


@pytest.fixture(autouse=True, scope="module")
def _block_runner(base):
    _run_block.model = base


def test_least_squares_recovers_a_planted_linear_shift():
    g = torch.Generator().manual_seed(3)
    stats = approx.OracleStatistics(1, H)
    planted = (torch.randn(H, 2, generator=g) @ torch.randn(2, H, generator=g)).double()
    for _ in range(3):
        x = torch.randn(1, 40, H, generator=g)
        d = (x.double() @ planted).float()
        stats.update(0, x, d, d * 0, d, torch.ones(1, 40))
    down, up = stats.linear_map(0, 2)
    torch.testing.assert_close((down.T @ up.T), planted, atol=1e-6, rtol=0)
    assert stats.residual_share(0, stats.least_squares(0)) < 1e-10
    row = stats.layer_row(0)
    assert row["rank99"] == 2 and row["linear_residual"] < 1e-10
    # as linear steering, the map adds exactly the planted shift to a block's output
    model = tiny_model("llama", hidden_size=H, num_layers=1)
    tensors = {"layer0_block.down.weight": down.float(), "layer0_block.up.weight": up.float()}
    steered = SteeredModel(model, SteeringConfig(rank=2, activation=None))
    steered.load_adapter_tensors(tensors, "test")
    h = torch.randn(5, H, generator=g)
    adapter = steered.adapters["layer0_block"]
    torch.testing.assert_close(adapter(h).double(), h.double() @ planted, atol=1e-4, rtol=0)
    steered.remove()


def test_effective_rank_counts_energy():
    s = torch.tensor([3.0, 0.9, 0.1, 0.0])  # energies 9, 0.81, 0.01: 91.6 %, 99.9 %
    assert approx.effective_rank(s, 0.9) == 1
    assert approx.effective_rank(s, 0.99) == 2
    assert approx.effective_rank(torch.zeros(3), 0.9) == 0


@pytest.fixture(scope="module")
def tables(base, finetuned, batches, tmp_path_factory):
    """The analysis of ``finetuned`` with a trained-like steering checkpoint plugged in."""
    where = tmp_path_factory.mktemp("adapter") / "silu"
    steered = SteeredModel(copy.deepcopy(base), SteeringConfig(rank=4))
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in steered.adapters.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    steered.save_pretrained(where)
    (where.parent / "validation.metrics.json").write_text(json.dumps({"accuracy": 0.25}))
    trained = approx.trained("silu", where)
    layers, table = analysis.analyze(base, finetuned, batches, [1, H], trained, log=lambda *_: None)
    return layers, table.set_index(["approximation", "frame"]), steered


def test_the_table_s_references(base, finetuned, batches, tables):
    _, table, steered = tables
    assert table.loc[("oracle", "finetuned"), "kl"] < 1e-9
    # truncation at full rank is the oracle itself
    assert table.loc[(f"oracle rank {H}", "finetuned"), "kl"] < 1e-9
    assert table.loc[("oracle rank 1", "finetuned"), "kl"] > 1e-6
    # the untouched base: KL(F || B) computed directly
    kl, n = 0.0, 0
    for batch in batches:
        reference = oracle.reference_logprobs(
            logits_of(finetuned, batch), batch.predicts_completion
        )
        k, m = oracle.completion_kl(reference, logits_of(base, batch), batch.predicts_completion)
        kl, n = kl + k, n + m
    assert table.loc[("base", "base"), "kl"] == pytest.approx(kl / n, rel=1e-9)
    assert n == table.loc[("base", "base"), "completion_tokens"] == 2 * 3 * 3
    # the trained checkpoint in B's frame is the steered model it trained as
    kl = 0.0
    for batch in batches:
        reference = oracle.reference_logprobs(
            logits_of(finetuned, batch), batch.predicts_completion
        )
        kl += oracle.completion_kl(reference, logits_of(steered, batch), batch.predicts_completion)[
            0
        ]
    row = table.loc[("silu", "base")]
    assert row["kl"] == pytest.approx(kl / n, rel=1e-6)
    assert row["accuracy"] == 0.25 and row["parameters"] == LAYERS * 2 * 4 * H
    assert table.loc[("linear rank 1", "finetuned"), "parameters"] == LAYERS * 2 * H
    # plugging in left no hook behind
    with steered.disabled():  # a copy of the base model
        assert torch.equal(logits_of(base, batches[0]), logits_of(steered, batches[0]))


def test_the_rank_h_linear_fit_beats_rank_1(tables):
    layers, table, _ = tables
    assert set(layers["layer"]) == set(range(LAYERS))
    assert (layers["rank99"] <= H).all() and (layers["rank90"] >= 1).all()
    linear = table.loc[(f"linear rank {H}", "finetuned"), "kl"]
    assert linear <= table.loc[("linear rank 1", "finetuned"), "kl"] + 1e-9


def test_plots_have_no_overlapping_text(tables, tmp_path):
    layers, table, _ = tables
    table = table.reset_index()
    figures = [
        analysis_plots.plot_effective_rank(layers, tmp_path / "r.png"),
        analysis_plots.plot_mlp_share(layers, tmp_path / "m.png"),
        analysis_plots.plot_kl(table, tmp_path / "k.png"),
    ]
    for fig in figures:
        assert overlapping_texts(fig) == []
    assert all((tmp_path / f).stat().st_size > 0 for f in ("r.png", "m.png", "k.png"))


def test_bad_pairs_and_ranks_are_refused(base):
    other_vocab = tiny_model("llama", vocab_size=640, hidden_size=H, num_layers=LAYERS)
    with pytest.raises(ValueError, match="vocab_size=640"):
        oracle.check_pair(base, other_vocab)
    other_arch = tiny_model("qwen2", hidden_size=H, num_layers=LAYERS)
    with pytest.raises(ValueError, match="model_type='qwen2'"):
        oracle.check_pair(base, other_arch)
    with pytest.raises(ValueError, match=rf"ranks \[{H + 1}\] are outside 1..{H}"):
        analysis.check_ranks([1, H + 1], H)


def test_a_checkpoint_of_another_method_is_refused(tmp_path):
    (tmp_path / "method.json").write_text(json.dumps({"method": "lora"}))
    with pytest.raises(ValueError, match="is a lora checkpoint; the oracle needs a full"):
        analysis.finetuned_model_dir(tmp_path)
    (tmp_path / "method.json").write_text(json.dumps({"method": "reft"}))
    with pytest.raises(ValueError, match="adapter r: .* is a reft checkpoint"):
        approx.trained("r", tmp_path)


def test_tables_are_data_frames(tables):
    layers, table, _ = tables
    assert isinstance(layers, pd.DataFrame)
    assert {"mlp_share", "attn_share", "mlp_cosine", "rank90", "rank99"} <= set(layers)


# --- the pipeline ----------------------------------------------------------------------------
GRID = {
    "models": {"tiny": {"tiny": {"hidden_size": 32, "layers": 2}}},
    "datasets": {"ARC_Challenge": {"source": "synthetic", "synthetic_scale": 0.05}},
    "variants": {
        "full": {"method": "full"},
        "silu": {"rank": 4},
        "lora": {"method": "lora", "rank": 2},
    },
    "seeds": [0],
    "splits": ["validation", "test"],  # the aggregation's plots show test
    "training": {"lr": 0.005, "max_train_samples": 24, "max_eval_samples": 6, "save_steps": 0},
    "analysis": {"datasets": ["ARC_Challenge"], "rows": 6, "ranks": [1, 32], "batch_rows": 3},
}


def checked(config: dict) -> dict:
    from steering.pipeline import grid_config, jobs
    from tests.workflow import ROOT

    config, written = json.loads(json.dumps(config)), json.loads(json.dumps(config))
    grid_config.check(config, written, schema=ROOT / "config" / "schema.yaml")
    return jobs.grid(config)


def problems_of(config: dict) -> str:
    from steering.pipeline import grid_config

    with pytest.raises(grid_config.GridConfigError) as e:
        checked(config)
    return str(e.value)


def test_config_errors_name_what_is_missing():
    no_full = copy.deepcopy(GRID)
    del no_full["variants"]["full"]
    assert "analysis: no variant of method full" in problems_of(no_full)
    elsewhere = copy.deepcopy(GRID)
    elsewhere["analysis"]["datasets"] = ["BoolQ"]
    assert "analysis.datasets: ['BoolQ'] have no runs" in problems_of(elsewhere)
    too_high = copy.deepcopy(GRID)
    too_high["analysis"]["ranks"] = [1, 33]
    assert "analysis.ranks: [33] exceed model tiny's hidden size H=32" in problems_of(too_high)
    not_steering = copy.deepcopy(GRID)
    not_steering["analysis"]["variants"] = ["full"]
    assert "analysis.variants: 'full' is no steering or LoRA variant" in problems_of(not_steering)
    unknown_key = copy.deepcopy(GRID)
    unknown_key["analysis"]["layers"] = 3
    assert "layers" in problems_of(unknown_key)


def test_jobs_and_their_arguments():
    import runpy
    import shlex
    import sys

    from steering.pipeline import analysis_jobs
    from tests.workflow import ROOT

    grid = checked(GRID)
    assert analysis_jobs.jobs(grid) == [("tiny", "ARC_Challenge")]
    assert analysis_jobs.adapter_runs(grid) == ["silu", "lora"]
    inputs = analysis_jobs.inputs(grid, "tiny", "ARC_Challenge")
    assert "results/runs/tiny/ARC_Challenge/full/seed0/checkpoint" in inputs
    assert "results/runs/tiny/ARC_Challenge/lora/seed0/validation.metrics.json" in inputs
    module = runpy.run_path(str(ROOT / "scripts" / "analyze.py"))
    held = sys.argv
    sys.argv = ["analyze.py", *shlex.split(analysis_jobs.args(grid, "tiny", "ARC_Challenge"))]
    try:
        a = module["parse_args"]()
    finally:
        sys.argv = held
    assert a.ranks == [1, 32] and a.rows == 6 and a.batch_rows == 3
    assert a.adapter == [
        ["silu", "results/runs/tiny/ARC_Challenge/silu/seed0/checkpoint"],
        ["lora", "results/runs/tiny/ARC_Challenge/lora/seed0/checkpoint"],
    ]
    without = copy.deepcopy(GRID)
    del without["analysis"]
    assert analysis_jobs.outputs(checked(without)) == []


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    """One Snakemake run of the tiny grid (every target: training, evaluation, aggregation
    and the analysis)."""
    import yaml

    from tests.workflow import copy_workflow, snakemake

    work = copy_workflow(tmp_path_factory.mktemp("pipeline"))
    (work / "analysis.yaml").write_text(yaml.safe_dump(GRID))
    # about a minute on an idle 2-core machine; the limit leaves room for a busy one
    proc = snakemake(
        work, "--configfile", "analysis.yaml", "--cores", "2", "--resources", "gpu=2", timeout=3600
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return work, proc.stdout + proc.stderr


def test_the_pipeline_makes_every_analysis_file(pipeline_run):
    work, output = pipeline_run
    out = work / "results" / "analysis" / "tiny" / "ARC_Challenge"
    from steering.pipeline import analysis_jobs

    for name in (*analysis_jobs.TABLES, "summary.json", *analysis_jobs.PLOTS):
        assert (out / name).stat().st_size > 0, name
    assert (work / "results/logs/analysis/tiny/ARC_Challenge.log").is_file()
    assert (work / "results/benchmarks/analysis/tiny/ARC_Challenge.tsv").is_file()
    layers = pd.read_csv(out / "layers.csv")
    assert list(layers["layer"]) == [0, 1] and layers["git_commit"].notna().all()
    table = pd.read_csv(out / "approximations.csv").set_index(["approximation", "frame"])
    assert table.loc[("oracle", "finetuned"), "kl"] < 1e-8
    assert table.loc[("base", "base"), "kl"] > 1e-6
    for run in ("silu", "lora"):
        metrics = work / f"results/runs/tiny/ARC_Challenge/{run}/seed0/validation.metrics.json"
        accuracy = json.loads(metrics.read_text())["accuracy"]
        assert table.loc[(run, "base"), "accuracy"] == pytest.approx(accuracy)
    assert table.loc[("silu", "base"), "parameters"] == 2 * (2 * 4 * 32)  # layers x 2 r H
    assert table.loc[("lora", "base"), "rank"] == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"] == 6 and summary["provenance"]["task"] == "ARC_Challenge"


def test_the_script_refuses_ranks_above_h(pipeline_run, monkeypatch, capsys, tmp_path):
    from tests.workflow import run_script

    work, _ = pipeline_run
    runs = "results/runs/tiny/ARC_Challenge"
    args = [
        "--base", "results/models/tiny", "--finetuned", f"{runs}/full/seed0/checkpoint",
        "--dataset", "ARC_Challenge", "--data-dir", "results/data/ARC_Challenge",
        "--rows", "2", "--ranks", "1", "33", "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    code, err, _ = run_script("analyze.py", args, monkeypatch, capsys, work)
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        "error: ranks [33] are outside 1..32 (the model's hidden size H); choose ranks between "
        "1 and H"
    )
    assert not (tmp_path / "out" / "layers.csv").exists()
    # a LoRA checkpoint is no full fine-tune
    args[3] = f"{runs}/lora/seed0/checkpoint"
    code, err, _ = run_script("analyze.py", args, monkeypatch, capsys, work)
    assert code == 2 and "is a lora checkpoint; the oracle needs a full fine-tune" in err
