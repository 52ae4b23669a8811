"""Semantic checks of a pipeline config, the ones its JSON schema cannot express.

The schema (``config/schema.yaml``) checks types, ranges, names and unknown keys one value at
a time. These checks look across values and files, before any job is scheduled:

- a key repeated in a YAML mapping (YAML keeps the last one, so a variant silently vanishes);
- a variant key that its method never reads (``lora_rank`` on a steering variant, ``rank`` on
  a steering vector, training settings on the untrained ``base``), which would otherwise be
  ignored without a word;
- combinations the method cannot run (joint adaptation with a vector or last-token steering);
- a dataset option that its ``source`` never reads, and a local ``data_dir`` that is missing;
- two model or two variant names for the same thing (the grid would train and report it
  twice, under two names).

``check`` raises ``GridConfigError`` listing every problem, each with where it is and what to
do. The Snakefile calls it after schema validation; it imports no torch and no snakemake.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

TRAINING = ("lr", "warmup_ratio", "weight_decay", "epochs", "bs")
JOINT_ONLY = (
    "lora_rank",
    "scheduler",
    "lora_lr",
    "adapter_lr",
    "orthogonal_freq",
    "orthogonal_side",
)

# A variant key -> the methods that read it (``method``, ``paper`` are read for every method).
METHOD_KEYS: dict[str, tuple[str, ...]] = {
    **{k: ("joint",) for k in JOINT_ONLY},
    "reft_first_n": ("reft",),
    "reft_last_n": ("reft",),
    "kind": ("steering", "joint"),
    "activation": ("steering", "joint"),
    "sites": ("steering", "joint"),
    "positions": ("steering", "joint"),
    "rank": ("steering", "joint", "lora", "reft"),
    **{k: ("steering", "joint", "lora", "full", "reft") for k in TRAINING},
}

# Variant settings joint adaptation cannot run (scripts/train_joint.py has no flag for them).
JOINT_UNSUPPORTED = {"kind": "vector", "sites": "submodules_official", "positions": "last"}

# A dataset key -> the sources that read it.
SOURCE_KEYS = {
    "data_dir": ("local",),
    "synthetic_seed": ("synthetic",),
    "synthetic_scale": ("synthetic",),
}


class GridConfigError(ValueError):
    """The config passes its schema but cannot mean what it says."""


class _Loader(yaml.SafeLoader):
    """A SafeLoader that records repeated mapping keys instead of keeping the last silently."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self.repeated: list[str] = []

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in seen:
                self.repeated.append(
                    f"line {line}: key {key!r} repeats the one on line {seen[key]}; YAML keeps "
                    "only the last, so rename or remove one"
                )
            seen.setdefault(key, line)
        return super().construct_mapping(node, deep=deep)


def repeated_keys(path: str | Path) -> list[str]:
    """Every repeated mapping key in the YAML file at ``path`` (``<path> line N: ...``)."""
    loader = _Loader(Path(path).read_text(encoding="utf-8"))
    try:
        loader.get_single_data()
    finally:
        loader.dispose()
    return [f"{path} {problem}" for problem in loader.repeated]


def _variant_problems(name: str, raw: dict[str, Any]) -> list[str]:
    method = raw.get("method", "steering")
    where = f"variants.{name} (method {method})"
    out = []
    for key in raw:
        users = METHOD_KEYS.get(key)
        if users is not None and method not in users:
            out.append(
                f"{where}: '{key}' is only read by method(s) {', '.join(users)}; remove it "
                "or change the method"
            )
    if method in ("steering", "joint") and raw.get("kind") == "vector":
        out += [
            f"{where}: '{key}' does not apply to a steering vector (kind: vector); remove it"
            for key in ("rank", "activation")
            if key in raw
        ]
    if method == "joint":
        out += [
            f"{where}: joint adaptation does not support {key}: {value}"
            for key, value in JOINT_UNSUPPORTED.items()
            if raw.get(key) == value
        ]
    return out


def _dataset_problems(name: str, raw: dict[str, Any], workdir: Path) -> list[str]:
    source = raw.get("source", "hub")
    out = [
        f"datasets.{name}: '{key}' is only read with source: {' or '.join(users)} (this one "
        f"is {source}); remove it or change the source"
        for key, users in SOURCE_KEYS.items()
        if key in raw and source not in users
    ]
    if source == "local" and "data_dir" in raw and not (workdir / raw["data_dir"]).is_dir():
        out.append(
            f"datasets.{name}: data_dir '{raw['data_dir']}' is not a directory (relative "
            f"paths are from {workdir}); it should hold the source-split files"
        )
    return out


def _same_entries(section: str, entries: dict[str, dict], ignore: tuple[str, ...]) -> list[str]:
    """Names in ``section`` whose settings are identical (apart from ``ignore``)."""
    first: dict[str, str] = {}
    out = []
    for name, entry in entries.items():
        key = json.dumps({k: v for k, v in entry.items() if k not in ignore}, sort_keys=True)
        if key in first:
            out.append(
                f"{section}.{name} has the same settings as {section}.{first[key]}: the grid "
                "would run and report it twice; remove one (or use seeds to repeat a run)"
            )
        first.setdefault(key, name)
    return out


def problems(
    config: dict[str, Any], raw: dict[str, Any] | None = None, workdir: str | Path = "."
) -> list[str]:
    """Every semantic problem of a schema-valid ``config``.

    ``raw`` is the config as written, before the schema filled in defaults (so a default
    value does not count as a key the user set); it defaults to ``config``.
    """
    raw = config if raw is None else raw
    out = []
    for name, variant in raw.get("variants", {}).items():
        out += _variant_problems(name, variant or {})
    for name, dataset in raw.get("datasets", {}).items():
        out += _dataset_problems(name, dataset or {}, Path(workdir))
    out += _same_entries("models", config["models"], ignore=("paper",))
    out += _same_entries("variants", config["variants"], ignore=("paper",))
    return out


def check(
    config: dict[str, Any],
    raw: dict[str, Any] | None = None,
    files: list[str | Path] = (),
    workdir: str | Path = ".",
) -> None:
    """Raise ``GridConfigError`` listing every problem of ``config`` and its YAML ``files``."""
    found = [p for f in files for p in repeated_keys(f)] + problems(config, raw, workdir)
    if found:
        lines = "\n".join(f"  - {p}" for p in found)
        raise GridConfigError(f"the config has {len(found)} problem(s):\n{lines}")
