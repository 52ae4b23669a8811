"""The untrained base model (``method: base``): nothing to train, evaluated as it is, once
(under the first seed: greedy decoding of a fixed model does not depend on the seed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from steering.methods.base import Method
from steering.runtime.precision import PRECISIONS


class Untrained(Method):
    name = "base"
    summary = "the untrained base model, evaluated as it is"
    script = None
    trains = False
    precisions = PRECISIONS

    def train_flags(self, entry: dict[str, Any]) -> list[str]:
        raise ValueError("the base model is not trained; it has no training flags")

    def build(self, base, options: dict[str, Any], steering=None, precision: str = "fp32"):
        raise ValueError("the base model is not trained: evaluate it without --ckpt-path")

    def estimate(self, shape, options: dict[str, Any], steering=None) -> int:
        return 0

    def load_on(self, base, path: Path | None, settings=None):
        return base

    def provenance(self, model, path: Path | None) -> dict[str, Any]:
        return {"steering": None}
