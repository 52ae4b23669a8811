"""Sweeps: a variant's ``sweep:`` mapping expanded into points, each point an ordinary run.

A variant such as ``silu: {rank: 8, sweep: {lr: [0.001, 0.002], rank: [4, 8]}}`` stands for
the product of its lists: four points, each the variant's own settings with the point's values
put in. Every point runs (for every seed) under a name derived from the variant and the point,

    <variant>@<key>=<value>[+<key>=<value>...]        e.g.  silu@lr=0.001+rank=4

keys in alphabetical order (so reordering a YAML mapping renames nothing), values as
``format_value`` writes them: integers as integers, floats as Python's shortest round-trip
form without a ``+`` (``0.002``, ``5e-05``, ``1e20``), ``None`` as ``null``, strings as they
are. The schema keeps ``@``, ``+`` and ``=`` out of variant names, so ``parse_run_name``
reads every run name back into its variant and settings; a variant without a sweep runs under
its own name with no settings. A comma is never used: Snakemake's ``--target-jobs`` (how a
Slurm job names its rule and wildcards) splits wildcards on commas.

This module only names and expands; which point wins is ``steering/pipeline/selection.py``.
No torch.
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Any

POINT = "@"  # between the variant and its point
JOIN = "+"  # between the point's settings
_NUMBER = re.compile(r"^[-]?(\d+\.?\d*|\.\d+)(e-?\d+)?$")
_INT = re.compile(r"^-?\d+$")
_WORD = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


def format_value(value: Any) -> str:
    """``value`` as it appears in a run name (ValueError for values a name cannot carry)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, type(None))):
        raise ValueError(f"{value!r} cannot name a run: use numbers, null or plain words")
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        return repr(value).replace("e+", "e")
    if not _WORD.match(value) or value == "null":
        raise ValueError(
            f"{value!r} cannot name a run: a word of letters, digits, '_', '.', '-' is needed"
        )
    return value


def parse_value(text: str) -> Any:
    """The inverse of ``format_value``."""
    if text == "null":
        return None
    if _INT.match(text):
        return int(text)
    if _NUMBER.match(text):
        return float(text)
    return text


def point_label(settings: dict[str, Any]) -> str:
    """``key=value+key=value`` in key order; ``""`` for no settings (an unswept variant)."""
    return JOIN.join(f"{k}={format_value(settings[k])}" for k in sorted(settings))


def run_name(variant: str, settings: dict[str, Any]) -> str:
    """The name a point of ``variant`` runs under (the variant's own name without settings)."""
    return f"{variant}{POINT}{point_label(settings)}" if settings else variant


def join_run_name(variant: str, label: str) -> str:
    """The inverse of ``split_run_name``: a variant and a point label -> the run's name."""
    return f"{variant}{POINT}{label}" if label else variant


def split_run_name(name: str) -> tuple[str, str]:
    """``silu@lr=0.001`` -> ``("silu", "lr=0.001")``; an unswept name -> ``(name, "")``."""
    variant, _, label = name.partition(POINT)
    return variant, label


def parse_label(label: str) -> dict[str, Any]:
    """``lr=0.001+rank=4`` -> ``{"lr": 0.001, "rank": 4}``."""
    if not label:
        return {}
    settings = {}
    for item in label.split(JOIN):
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{label!r} is not a sweep point (expected key=value[+key=value])")
        settings[key] = parse_value(text)
    return settings


def parse_run_name(name: str) -> tuple[str, dict[str, Any]]:
    """A run name back into its variant and the point's settings."""
    variant, label = split_run_name(name)
    return variant, parse_label(label)


def points(sweep: dict[str, list]) -> list[dict[str, Any]]:
    """The product of the sweep's lists: keys in alphabetical order, values as listed."""
    keys = sorted(sweep)
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(sweep[k] for k in keys))
    ]


def expand(variants: dict[str, dict]) -> dict[str, dict]:
    """Variants -> runs: a swept variant becomes one entry per point (its settings with the
    point's put in, ``sweep`` dropped), named by ``run_name``; others stay as they are."""
    out: dict[str, dict] = {}
    for name, entry in variants.items():
        sweep = (entry or {}).get("sweep")
        if not sweep:
            out[name] = entry
            continue
        own = {k: v for k, v in entry.items() if k != "sweep"}
        for point in points(sweep):
            out[run_name(name, point)] = {**own, **point}
    return out
