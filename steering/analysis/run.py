"""The paper's oracle-shift analysis of one (base model, full fine-tune, dataset): which
activation shift after each block reproduces full fine-tuning, how low-rank it is, how much
of it the MLP carries, and how close each kind of steering gets (docs/analysis.md).

Two passes over the first ``rows`` validation rows, ``batch_rows`` rows at a time:

1. F's forward, B's block l run on F's input of block l inside it (``steering/analysis/oracle.py``):
   per-layer sums (``OracleStatistics``) -> ``layers.csv``, and the fits (mean vector,
   spectra, least-squares maps);
2. again per row batch: F's log-probabilities at completion positions, then B with each
   approximation plugged in after every block -> the mean per-token
   KL(F || B + shift) over completion tokens -> ``approximations.csv``.

Peak memory: both models' weights; one row batch's activations of a forward plus its oracle
shifts for every layer (L b S H values, pass 2) and its logits (b S V); on the host the
per-layer sums, 3 L H^2 float64 (about 13 GB for L = 32, H = 4096; 80 MB for SmolLM2-135M).
"""

from __future__ import annotations

import contextlib
import json
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from steering.analysis import approximations as approx
from steering.analysis import oracle
from steering.architectures import decoder_layers, text_config

REFERENCE_RANKS = (1, 8, 64)
OUTPUTS = (
    "layers.csv",
    "approximations.csv",
    "summary.json",
    *(f"{p}.png" for p in ("effective_rank", "mlp_share", "kl")),
)


@dataclass
class AnalysisSettings:
    base: str
    finetuned: str
    dataset: str
    out: str
    adapters: list[tuple[str, str]] = field(default_factory=list)
    data_dir: str | None = None
    rows: int = 64
    ranks: list[int] = field(default_factory=lambda: list(REFERENCE_RANKS))
    batch_rows: int = 8
    split: str = "validation"
    dtype: str = "float32"
    device: str | None = None
    single_bos: bool = False


def finetuned_model_dir(path: str | Path) -> Path:
    """The HF model directory of ``--finetuned``: a plain model directory, or a ``full`` run's
    checkpoint (its ``model/``)."""
    from steering.methods.base import METHOD_FILE, read_method_file

    path = Path(path)
    if (path / METHOD_FILE).is_file():
        method = read_method_file(path).get("method")
        if method != "full":
            raise ValueError(
                f"--finetuned {path} is a {method} checkpoint; the oracle needs a full "
                "fine-tune (a run of method full, or an HF model directory)"
            )
        return path / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"--finetuned {path} is neither an HF model directory nor a full run's checkpoint"
        )
    return path


def check_ranks(ranks: list[int], hidden_size: int) -> None:
    bad = [r for r in ranks if not 1 <= r <= hidden_size]
    if bad:
        raise ValueError(
            f"ranks {bad} are outside 1..{hidden_size} (the model's hidden size H); choose "
            "ranks between 1 and H"
        )


def statistics(base, finetuned, batches: list[oracle.RowBatch], log=print):
    """Pass 1: the per-layer sums of every row batch's oracle shifts."""
    stats = approx.OracleStatistics(len(decoder_layers(base)), text_config(base).hidden_size)
    for i, batch in enumerate(batches):
        mask = batch.attention_mask

        def keep(layer, block_out, delta, d_attn, d_mlp, mask=mask):
            stats.update(layer, block_out, delta, d_attn, d_mlp, mask)

        oracle.oracle_forward(base, finetuned, batch, keep)
        log(f"pass 1: row batch {i + 1}/{len(batches)}")
    return stats


@torch.no_grad()
def divergences(base, finetuned, batches, approximations, log=print) -> list[dict[str, Any]]:
    """Pass 2: the mean per-token KL(F || B + shift) of each approximation on completion
    tokens (sums over row batches, then divided)."""
    totals = [[0.0, 0] for _ in approximations]
    for i, batch in enumerate(batches):
        deltas: dict[int, torch.Tensor] = {}

        def keep(layer, block_out, delta, d_attn, d_mlp, deltas=deltas):
            deltas[layer] = delta  # (b, S, H): this row batch only

        f_logits = oracle.oracle_forward(base, finetuned, batch, keep)
        reference = oracle.reference_logprobs(f_logits, batch.predicts_completion)
        del f_logits
        for total, a in zip(totals, approximations, strict=True):
            frame = (
                oracle.finetuned_frame(base, finetuned)
                if a.frame == "finetuned"
                else contextlib.nullcontext()
            )
            with frame, a.plug(base, deltas) as model:
                out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
            kl, n = oracle.completion_kl(reference, out.logits, batch.predicts_completion)
            total[0] += kl
            total[1] += n
        log(f"pass 2: row batch {i + 1}/{len(batches)}")
    rows = []
    for (kl, n), a in zip(totals, approximations, strict=True):
        rows.append(
            {
                "approximation": a.name,
                "kind": a.kind,
                "frame": a.frame,
                "rank": a.rank,
                "parameters": a.parameters,
                "kl": kl / max(1, n),
                "completion_tokens": n,
                "accuracy": a.accuracy,
                "checkpoint": a.checkpoint,
            }
        )
    return rows


def reference_rows() -> list[approx.Approximation]:
    """B as it is (KL(F || B)), and B's blocks in F's frame with no shift."""
    return [
        approx.Approximation("base", "reference", "base", approx.unchanged),
        approx.Approximation("base blocks", "reference", "finetuned", approx.unchanged),
    ]


def analyze(
    base,
    finetuned,
    batches: list[oracle.RowBatch],
    ranks: list[int],
    trained: list[approx.Approximation] = (),
    log=print,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(layers, approximations) tables for ``base`` and its full fine-tune ``finetuned``."""
    oracle.check_pair(base, finetuned)
    check_ranks(ranks, int(text_config(base).hidden_size))
    for a in trained[::2]:  # a bad checkpoint fails before the passes (and sets the sizes)
        with a.plug(base, {}):
            pass
    stats = statistics(base, finetuned, batches, log)
    layers = pd.DataFrame([stats.layer_row(layer) for layer in range(stats.num_layers)])
    approximations = [
        *reference_rows(),
        approx.oracle_approximation(),
        *approx.truncations(stats, ranks),
        approx.mean_vector(stats),
        *approx.linear_maps(stats, ranks),
        *trained,
    ]
    table = pd.DataFrame(divergences(base, finetuned, batches, approximations, log))
    return layers, table


def peak_memory() -> dict[str, Any]:
    """The process's peak resident memory, and CUDA's peak allocation when on a GPU."""
    out = {"host_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.cuda.is_available():
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def run(s: AnalysisSettings, log=print) -> dict[str, Any]:
    """Load, analyze, write every output of ``OUTPUTS`` into ``s.out``; returns the summary."""
    from steering.analysis import plots as analysis_plots
    from steering.evaluation.evaluator import provenance
    from steering.loading.loader import load_base_model, load_tokenizer
    from steering.runtime.io import atomic_path, write_json
    from steering.tasks import get_task

    started = time.time()
    task = get_task(s.dataset)
    split = task.load(data_dir=s.data_dir)[s.split]
    rows = split.select(range(min(s.rows, len(split))))
    finetuned_dir = finetuned_model_dir(s.finetuned)
    trained = [a for name, path in s.adapters for a in approx.trained(name, path)]
    tokenizer = load_tokenizer(s.base)
    base = load_base_model(s.base, s.dtype, s.device)
    finetuned = load_base_model(str(finetuned_dir), s.dtype, s.device)
    oracle.check_pair(base, finetuned, f"--finetuned {s.finetuned}")
    examples = oracle.encode_rows(task, rows, tokenizer, base.config.model_type, s.single_bos)
    device = next(base.parameters()).device
    batches = [
        b.to(device) for b in oracle.row_batches(examples, s.batch_rows, tokenizer.pad_token_id)
    ]
    layers, table = analyze(base, finetuned, batches, s.ranks, trained, log)
    prov = provenance(asdict(s), task, None)
    for df in (layers, table):
        df["git_commit"], df["package_version"] = prov["git_commit"], prov["package_version"]
    out = Path(s.out)
    with atomic_path(out / "layers.csv") as tmp:
        layers.to_csv(tmp, index=False)
    with atomic_path(out / "approximations.csv") as tmp:
        table.to_csv(tmp, index=False)
    analysis_plots.plot_effective_rank(layers, out / "effective_rank.png")
    analysis_plots.plot_mlp_share(layers, out / "mlp_share.png")
    analysis_plots.plot_kl(table, out / "kl.png")
    summary = {
        "rows": len(rows),
        "tokens": int(sum(int(b.attention_mask.sum()) for b in batches)),
        "completion_tokens": int(sum(int(b.predicts_completion.sum()) for b in batches)),
        "finetuned_accuracy": approx.accuracy_beside(s.finetuned),
        "runtime_s": time.time() - started,
        "memory": peak_memory(),
        "provenance": prov,
    }
    write_json(out / "summary.json", summary)
    return summary


def read_adapters(pairs: list[list[str]] | None) -> list[tuple[str, str]]:
    names = [name for name, _ in pairs or []]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"--adapter names must differ; repeated: {repeated}")
    return [(name, path) for name, path in pairs or []]


def dumps(summary: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in summary.items() if k != "provenance"}, indent=1)
