"""The LoReFT baseline as a method (its model: ``model.py`` beside this file): an
intervention on chosen prompt positions of every layer. Settings: ``rank``, and the
positions as ``reft_first_n`` / ``reft_last_n`` or by name, ``reft_positions`` (``last1``,
``first7_last7``, ``first3``: pipeline only). Checkpoint: ``method.json``,
``reft_config.json`` and ``reft.safetensors``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from steering.methods.base import Method, Setting, write_method_file
from steering.runtime.precision import PRECISIONS

PATTERN = "^(first[1-9][0-9]*(_last[1-9][0-9]*)?|last[1-9][0-9]*)$"  # for the schema
POSITIONS = re.compile(
    r"^(?:first(?P<first>[1-9]\d*)(?:_last(?P<both>[1-9]\d*))?|last(?P<last>[1-9]\d*))$"
)


def reft_positions(name: str) -> tuple[int, int]:
    """``last1`` -> (0, 1); ``first7_last7`` -> (7, 7); ``first3`` -> (3, 0)."""
    m = POSITIONS.match(name)
    if m is None:
        raise ValueError(
            f"reft_positions {name!r} is not last<n>, first<n> or first<n>_last<m> (n, m >= 1)"
        )
    return int(m["first"] or 0), int(m["both"] or m["last"] or 0)


class Reft(Method):
    name = "reft"
    summary = "LoReFT on the last prompt token (or the first n and last n)"
    prompt_positions = True
    settings = (
        Setting("rank", {"type": "integer", "minimum": 1}, 8, "LoReFT rank", "--reft-rank"),
        Setting("reft_first_n", {"type": "integer", "minimum": 0}, None, "first n prompt tokens"),
        Setting("reft_last_n", {"type": "integer", "minimum": 0}, None, "last n prompt tokens"),
        Setting(
            "reft_positions",
            {
                "type": "string",
                "pattern": "^(first[1-9][0-9]*(_last[1-9][0-9]*)?|last[1-9][0-9]*)$",
            },
            None,
            "the positions by name (pipeline): last1, first7_last7, first3",
        ),
    )
    OPTIONS = {"rank": 8, "reft_first_n": 0, "reft_last_n": 1}  # reft_positions: config only
    precisions = PRECISIONS
    # each layer's intervention keeps its terms per token for the backward pass (W h + b, R h,
    # the H-wide correction and its masked copy); measured: benchmarks/memory_plan.py, 100M
    activation_factor = 1.15

    def packing_refusal(self, options: dict[str, Any], steering) -> str | None:
        return "ReFT intervenes at each row's first and last prompt positions"

    def config_problems(self, where: str, raw: dict[str, Any]) -> list[str]:
        if "reft_positions" not in raw:
            return []
        return [
            f"{where}: give reft_positions or {key}, not both"
            for key in ("reft_first_n", "reft_last_n")
            if key in raw
        ]

    def train_flags(self, entry: dict[str, Any]) -> list[str]:
        out = ["--method", self.name, "--reft-rank", str(entry.get("rank", 8))]
        if entry.get("reft_positions"):
            first, last = reft_positions(entry["reft_positions"])
            return out + ["--reft-first-n", str(first), "--reft-last-n", str(last)]
        for key in ("reft_first_n", "reft_last_n"):
            if entry.get(key) is not None:
                out += [f"--{key.replace('_', '-')}", str(entry[key])]
        return out

    def add_arguments(self, parser) -> None:
        group = parser.add_argument_group("--method reft")
        group.add_argument("--reft-rank", type=int, default=8, help="with --method reft")
        group.add_argument("--reft-first-n", type=int, default=0, help="first n prompt tokens")
        group.add_argument("--reft-last-n", type=int, default=1, help="last n prompt tokens")

    def options_from_args(self, args) -> dict[str, Any]:
        a = args
        return {"rank": a.reft_rank, "reft_first_n": a.reft_first_n, "reft_last_n": a.reft_last_n}

    def options_from_entry(self, entry: dict[str, Any]) -> dict[str, Any]:
        out = {
            k: entry[k] for k in ("rank", "reft_first_n", "reft_last_n") if entry.get(k) is not None
        }
        if entry.get("reft_positions"):
            out["reft_first_n"], out["reft_last_n"] = reft_positions(entry["reft_positions"])
        return out

    def variant_name(self, options: dict[str, Any], steering) -> str:
        o = options
        return f"reft_r{o['rank']}_f{o['reft_first_n']}_l{o['reft_last_n']}"

    def build(self, base, options: dict[str, Any], steering=None, precision: str = "fp32"):
        from steering.methods.reft.model import ReftModel
        from steering.runtime.precision import trainable_dtype

        o = options
        first, last = o["reft_first_n"], o["reft_last_n"]
        return ReftModel(base, o["rank"], first, last, trainable_dtype(precision))

    def estimate(self, shape, options: dict[str, Any], steering=None) -> int:
        return shape.layers * (2 * options["rank"] * shape.hidden + options["rank"])  # R, W, b

    def trainable_parameters(self, model) -> int:
        return model.num_trainable_parameters()

    def base_parameters(self, model) -> int:
        return sum(p.numel() for p in model.base_model.parameters())

    def save(self, model, path: Path, settings) -> None:
        model.save(path)  # reft_config.json + reft.safetensors
        write_method_file(path, self.name, {"base_model": settings.model_name})

    def load_on(self, base, path: Path, settings=None):
        from steering.methods.reft.model import ReftModel
        from steering.runtime.precision import trainable_dtype

        return ReftModel.load(base, path, trainable_dtype(getattr(settings, "precision", "fp32")))
