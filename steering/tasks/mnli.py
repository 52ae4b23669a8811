"""MNLI (nyu-mll/glue, mnli_matched): does a premise entail, contradict, or leave open a
hypothesis.

One of the official command line's datasets beyond the paper's tables (``EXTRA_TASKS``).
Only the matched validation split is used (the test split has no labels): carve(validation,
0.2) gives train = its train part (80 %); its test part is carved again (0.5, shuffled
first): validation = that carve's train part, test = its test part. The prompt ends in
``Answer:`` and the completion repeats it (``Answer: ENTAILMENT.``); label the class name in
lower case (0 entailment, 1 neutral, 2 contradiction). Training max length 100 (also for the
Gemma chat path); 100 new tokens, one epoch (the official defaults).

Parser quirks kept for comparability (``score``): after the first ``answer:`` (the whole
output when there is none), any "entailment" or "entailed" anywhere means entailment, else
any "contradict" means contradiction, else the answer is neutral: an output with no class
at all (empty, or cut short) scores right on every neutral row, and a trained model that
runs on past its answer into a made-up next example (its prompt says "ENTAILED by the
premise, CONTRADICTED by the premise, or NEUTRAL") reads entailment whatever it answered.
``score_strict``: the first class word after the first ``answer:`` (on a word boundary)
decides, and no class word is wrong.
"""

from __future__ import annotations

import random
import re
from typing import Any

from steering.tasks.base import Task

CLASSES = {0: "entailment", 1: "neutral", 2: "contradiction"}
_ANSWER = re.compile(r"(?i)answer\s*:\s*(.*)", re.DOTALL)
_STRICT_ANSWER = re.compile(r"(?i)\banswer\s*:")
_STRICT_CLASS = re.compile(r"(?i)\b(?:(entail)|(neutral)|(contradict))\w*")

_NAMES = "Anna Ben Chloe David Emma Felix Grace Hugo Iris Jonas".split()
_PLACES = ["the park", "the library", "the station", "the market", "the museum", "the harbour"]
_ACTIVITIES = ["reading", "painting", "running", "singing", "cooking", "sleeping"]


class MNLI(Task):
    name = "MNLI"
    hub_id = "nyu-mll/glue"
    hub_config = "mnli_matched"
    split_plan = {
        "train": ("validation", 0.2, "train"),
        "validation": ("validation", 0.2, "test", 0.5, "train"),
        "test": ("validation", 0.2, "test", 0.5, "test"),
    }
    fields = {"premise": "str", "hypothesis": "str", "label": "int"}
    max_new_tokens = 100  # the official default: MNLI is not in its table
    epochs = 1  # the official default
    max_length = 100
    synthetic_sizes = {"validation": 2000}
    synthetic_min_rows = 10  # two carves: each part keeps a row
    public_rows = {"train": 7852, "validation": 981, "test": 982}
    mean_tokens = 95

    def check_row(self, ex: dict[str, Any]) -> str | None:
        if ex["label"] not in CLASSES:
            return (
                f"field 'label' must be 0 (entailment), 1 (neutral) or 2 (contradiction), got "
                f"{ex['label']!r} (the hub's test split has no labels: -1)"
            )
        return None

    def prompt(self, ex: dict[str, Any]) -> str:
        return (
            "Read the following premise and hypothesis.\n"
            "Decide whether the hypothesis is ENTAILED by the premise, "
            "CONTRADICTED by the premise, or NEUTRAL.\n\n"
            f"Premise:\n{ex['premise']}\n\nHypothesis:\n{ex['hypothesis']}\n\nAnswer:"
        )

    def completion(self, ex: dict[str, Any]) -> str:
        return f"Answer: {self.label(ex).upper()}."

    def label(self, ex: dict[str, Any]) -> str:
        return CLASSES.get(int(ex["label"]), "unknown")

    def score(self, output: str, label: Any) -> bool:
        if not output:  # an output of spaces alone goes on, and reads neutral
            return False
        text = output.strip()
        m = _ANSWER.search(text)
        found = (m.group(1).strip() if m else text).lower()
        if "entailment" in found or "entailed" in found:
            pred = "entailment"
        elif "contradiction" in found or "contradict" in found:
            pred = "contradiction"
        else:
            pred = "neutral"
        return pred == str(label).strip().lower()

    def score_strict(self, output: str, label: Any) -> bool:
        """The first class word (``entail…``, ``neutral…``, ``contradict…``) after the first
        ``answer:`` on a word boundary, else in the whole output, decides; none is wrong."""
        m = _STRICT_ANSWER.search(output)
        word = _STRICT_CLASS.search(output, m.end() if m else 0)
        if word is None:
            return False
        pred = ("entailment", "neutral", "contradiction")[word.lastindex - 1]
        return pred == str(label).strip().lower()

    def synthetic_split(self, split: str, n: int, seed: int) -> list[dict[str, Any]]:
        """Premises about a person's place and activity; the hypothesis restates one
        (entailment), negates it (contradiction) or adds something unsaid (neutral)."""
        rng = random.Random(f"MNLI-{split}-{seed}")
        rows = []
        for i in range(n):
            who, place, doing = rng.choice(_NAMES), rng.choice(_PLACES), rng.choice(_ACTIVITIES)
            premise = f"{who} spent the whole afternoon {doing} at {place}."
            label = rng.randrange(3)
            if label == 0:
                hypothesis = rng.choice([f"{who} was at {place}.", f"{who} was {doing}."])
            elif label == 1:
                hypothesis = f"{who} went to {place} with a friend."
            else:
                other = rng.choice([p for p in _PLACES if p != place])
                hypothesis = rng.choice([f"{who} was never at {place}.", f"{who} was at {other}."])
            rows.append({"premise": premise, "hypothesis": hypothesis, "label": label, "idx": i})
        return rows
