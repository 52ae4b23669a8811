"""The real data shipped in the repository (``data/``): how it is built from the public files,
and the check that it is what its manifest says.

``data/<task>/<source split>.jsonl`` holds each task's source splits in the hub schema, so
``get_task(name).load("data/<name>")`` reads and carves them like any local source files.
Where a public split the protocol needs was not available (BoolQ train with passages,
Winogrande train, AQuA train), it is carved from a split that exists, by ``CARVED``:

    new, rest = carve(S, p)["train"], carve(S, p)["test"]     (carve: PROTOCOL.md section 4)

so ``new`` (1 - p of S's rows) becomes the missing split and ``rest`` replaces S; every row of S
is in exactly one of them. Lines are copied verbatim (their bytes are the public file's), so a
shipped file's sha256 is a function of the source file and the recipe alone.

``data/manifest.json`` records, per file, its sha256, row count, origin (the public file and its
sha256) and how it was made; ``check`` verifies files against it and that no row (compared by
the prompt the model sees, not by index) is in two source splits of a task.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from steering.runtime.io import json_text
from steering.runtime.storage import staged_dir, writing
from steering.tasks.base import CARVE_SEED, carve
from steering.tasks.files import DataError

MANIFEST = "data/manifest.json"  # relative to the repository root
SHIPPED_TASKS = ("AQuA", "ARC_Challenge", "BoolQ", "GSM8K", "Winogrande")

# task -> missing split -> (existing split it is carved from, test_size p of carve(S, p));
# the new split is carve's train part, the existing split keeps its test part.
CARVED: dict[str, dict[str, tuple[str, float]]] = {
    "BoolQ": {"train": ("validation", 0.5)},
    "Winogrande": {"train": ("validation", 0.5)},
    "AQuA": {"train": ("validation", 0.5)},
}

LICENCES: dict[str, str] = {
    "AQuA": "Apache-2.0 (Google DeepMind)",
    "ARC_Challenge": "CC BY-SA 4.0 (AI2)",
    "BoolQ": "CC BY-SA 3.0 (Google)",
    "GSM8K": "MIT (OpenAI)",
    "Winogrande": "CC BY 4.0 (AI2)",
}


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_lines(path: Path) -> list[str]:
    """The non-empty lines of a JSON-lines file, each without its newline."""
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def carve_indices(n: int, test_size: float) -> tuple[list[int], list[int]]:
    """Row indices of carve(S, test_size)'s train and test parts for a split of ``n`` rows:
    the protocol's carve run on the indices, so the lines themselves are never re-serialised."""
    from datasets import Dataset  # imported here: --help and --check need no datasets

    parts = carve(Dataset.from_dict({"i": list(range(n))}), test_size)
    return list(parts["train"]["i"]), list(parts["test"]["i"])


def plan_task(task: str, source_dir: Path) -> dict[str, tuple[list[str], dict[str, Any]]]:
    """split -> (its lines, its manifest entry without hash/rows) from the public files."""
    out: dict[str, tuple[list[str], dict[str, Any]]] = {}
    sources = sorted(source_dir.glob("*.jsonl"))
    if not sources:
        raise DataError(f"{task}: no <split>.jsonl files in {source_dir}")
    for path in sources:
        origin = {"file": f"{task}/{path.name}", "sha256": sha256_of(path)}
        out[path.stem] = (read_lines(path), {"origin": origin, "made": "copied unchanged"})
    for new, (existing, p) in CARVED.get(task, {}).items():
        if new in out:
            raise DataError(f"{task}: {source_dir} has a {new} split; the recipe carves one")
        if existing not in out:
            raise DataError(f"{task}: {source_dir} has no {existing}.jsonl to carve {new} from")
        lines, entry = out[existing]
        take, keep = carve_indices(len(lines), p)
        how = f"carve({existing}, {p}) of the public {existing} file, seed {CARVE_SEED}"
        out[new] = (
            [lines[i] for i in take],
            {"origin": entry["origin"], "made": f"{how}: its train part ({len(take)} rows)"},
        )
        out[existing] = (
            [lines[i] for i in keep],
            {"origin": entry["origin"], "made": f"{how}: its test part ({len(keep)} rows)"},
        )
    return out


def build(source_root: str | Path, out_dir: str | Path, tasks=SHIPPED_TASKS) -> dict:
    """Write ``out_dir/<task>/<split>.jsonl`` for each task and ``out_dir/manifest.json``;
    the files of a task are replaced whole or not at all. Returns the manifest."""
    source_root, out_dir = Path(source_root), Path(out_dir)
    manifest: dict[str, Any] = {
        "about": "the real data shipped with the project; see data/README.md",
        "carve_seed": CARVE_SEED,
        "tasks": {},
    }
    for task in tasks:
        planned = plan_task(task, source_root / task)
        files = {}
        with staged_dir(out_dir / task) as stage:
            for split, (lines, entry) in sorted(planned.items()):
                path = stage / f"{split}.jsonl"
                with writing(path):
                    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
                files[f"{split}.jsonl"] = {"sha256": sha256_of(path), "rows": len(lines), **entry}
        manifest["tasks"][task] = {"licence": LICENCES[task], "files": files}
    with staged_dir(out_dir) as stage:  # the manifest goes in last, atomically
        with writing(stage / "manifest.json"):
            (stage / "manifest.json").write_text(json_text(manifest), encoding="utf-8")
    return manifest


def overlaps(task: str, data_dir: Path) -> list[str]:
    """Prompts (what the model sees) found in two source splits of ``task``: leaks."""
    from steering.tasks import get_task  # the registry imports the task modules

    t = get_task(task)
    seen: dict[str, str] = {}
    found = []
    for path in sorted(data_dir.glob("*.jsonl")):
        for line in read_lines(path):
            prompt = t.prompt(json.loads(line))
            other = seen.setdefault(prompt, path.stem)
            if other != path.stem:
                found.append(f"{task}: a row of {path.name} is also in {other}.jsonl")
    return found


def check(data_root: str | Path | None = None) -> list[str]:
    """Problems with the shipped data (empty list: all good): every file the manifest names
    exists with its sha256 and row count, no other .jsonl file is there, and no row is in two
    source splits of a task (hence, carving being a partition, in two carved splits)."""
    data_root = Path(data_root) if data_root else repo_root() / "data"
    manifest_path = data_root / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        tasks = manifest["tasks"]
    except (OSError, ValueError, KeyError) as e:
        return [f"{manifest_path}: unreadable manifest ({e}); rebuild: python scripts/ship_data.py"]
    problems = []
    for task, info in sorted(tasks.items()):
        present = {p.name for p in (data_root / task).glob("*.jsonl")}
        for name in sorted(present - set(info["files"])):
            problems.append(f"{data_root / task / name}: not in the manifest")
        for name, entry in sorted(info["files"].items()):
            path = data_root / task / name
            if not path.is_file():
                problems.append(f"{path}: missing")
                continue
            rows, digest = len(read_lines(path)), sha256_of(path)
            if rows != entry["rows"] or digest != entry["sha256"]:
                problems.append(
                    f"{path}: {rows} rows, sha256 {digest[:12]}; the manifest says "
                    f"{entry['rows']} rows, {entry['sha256'][:12]}: the file was changed"
                )
        problems += overlaps(task, data_root / task)
    return problems
