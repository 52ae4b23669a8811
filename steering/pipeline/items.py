"""Every run's per-item verdicts, read for the paired intervals of the tables (no torch).

An evaluation's ``<split>.metrics.json`` carries them (``correct_items``,
``correct_items_strict``: one 0/1 character per item, in evaluation order, and
``items_sha256``, the fingerprint of the items: ``steering.runtime.provenance.items_digest``).
Metrics written before those fields existed are read from the records beside them
(``<split>.json``: each line's ``eval``, ``eval_strict``, ``prompt`` and ``label``), so old
result trees get intervals too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from steering.pipeline.results import parse_metrics_path
from steering.runtime.provenance import items_digest

PARSERS = {"accuracy": "correct_items", "accuracy_strict": "correct_items_strict"}


@dataclass(frozen=True)
class Items:
    """One run's verdicts on one split: ``digest`` names the items, ``scores`` maps a metric
    (``accuracy``, ``accuracy_strict``) to its (n,) uint8 vector of 0/1."""

    digest: str
    scores: dict[str, np.ndarray]


def _vector(bits: str) -> np.ndarray:
    return np.frombuffer(bits.encode("ascii"), dtype=np.uint8) - ord("0")


def _from_records(path: Path) -> Items | None:
    records_path = path.with_name(path.name.removesuffix(".metrics.json") + ".json")
    if not records_path.is_file():
        return None
    try:
        lines = records_path.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
        scores = {
            "accuracy": np.array([bool(r["eval"]) for r in records], dtype=np.uint8),
            "accuracy_strict": np.array(
                [bool(r.get("eval_strict", r["eval"])) for r in records], dtype=np.uint8
            ),
        }
        return Items(items_digest(records), scores)
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"cannot read the records {records_path} of {path.name}: {e}") from e


def read(path: str | Path) -> Items | None:
    """The verdicts of one metrics file, else of the records beside it; None when neither
    has them (metrics from before they were recorded, whose records are gone)."""
    path = Path(path)
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read metrics file {path}: {e}") from e
    if "correct_items" not in metrics:
        return _from_records(path)
    scores = {m: _vector(metrics.get(f, metrics["correct_items"])) for m, f in PARSERS.items()}
    if any(len(v) != metrics["n"] for v in scores.values()):
        raise ValueError(f"{path}: the per-item verdicts do not count n={metrics['n']} items")
    return Items(metrics["items_sha256"], scores)


def read_all(metrics_paths) -> tuple[dict[tuple, Items], list[str]]:
    """(model, dataset, variant, point, seed, split) -> that run's ``Items``, and the metrics
    files without verdicts (their cells get no interval and no comparison)."""
    out, lacking = {}, []
    for path in metrics_paths:
        found = read(path)
        if found is None:
            lacking.append(str(path))
            continue
        out[tuple(parse_metrics_path(path).values())] = found
    return out, lacking
