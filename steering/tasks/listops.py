"""ListOps (fengyang0317/listops-64): evaluate nested list expressions over digits 0-9.

The task is synthetic by nature (Nangia & Bowman 2018, as generated for Long Range Arena), so
the generator here produces real data of it: operators ``[MIN``, ``[MAX``, ``[MED`` (median,
``int(np.median)``), ``[SM`` (sum modulo 10), each closed by ``]``. An operator node with
arguments a1..ak is folded into binary nodes ((((OP a1) a2) ...) ak) ]) and the string form
wraps every binary node in ``( ... )``, e.g. ``( ( ( [MAX 2 ) 9 ) ] )``. Length (the count of
operator, digit and ``]`` tokens, parentheses excluded) is bounded: at most 64 for listops-64.
"""

from __future__ import annotations

import random
import re
from typing import Any

import numpy as np

from steering.tasks.base import Task

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
END = "]"
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_ASCII_NUMBER = re.compile(r"\s*([0-9]+)\s*")


def apply(op: str, values: list[int]) -> int:
    if op == "[MIN":
        return min(values)
    if op == "[MAX":
        return max(values)
    if op == "[MED":
        return int(np.median(values))
    if op == "[SM":
        return sum(values) % 10
    raise ValueError(f"unknown ListOps operator {op!r}; valid: {OPERATORS}")


class _TooLong(Exception):
    pass


def _tree(
    rng: random.Random,
    depth: int,
    budget: list[int],
    max_depth: int,
    max_args: int,
    branch_p: float,
    force_op: bool = False,
):
    """A random tree: an int leaf or (op, [children]); ``budget`` counts tokens left."""
    if not force_op and (depth >= max_depth or rng.random() >= branch_p):
        budget[0] -= 1
        if budget[0] < 0:
            raise _TooLong
        return rng.randrange(10)
    budget[0] -= 2  # the operator and its closing bracket
    op = rng.choice(OPERATORS)
    children = [
        _tree(rng, depth + 1, budget, max_depth, max_args, branch_p)
        for _ in range(rng.randint(2, max_args))
    ]
    if budget[0] < 0:
        raise _TooLong
    return op, children


def to_string(tree) -> str:
    """The LRA string form: every binary node of the folded tree wrapped in ``( ... )``."""
    if isinstance(tree, int):
        return str(tree)
    op, children = tree
    text = f"( {op} {to_string(children[0])} )"
    for child in children[1:]:
        text = f"( {text} {to_string(child)} )"
    return f"( {text} {END} )"


def value(tree) -> int:
    if isinstance(tree, int):
        return tree
    op, children = tree
    return apply(op, [value(c) for c in children])


def tree_length(tree) -> int:
    return 1 if isinstance(tree, int) else 2 + sum(tree_length(c) for c in tree[1])


def generate(
    rng: random.Random,
    max_length: int = 64,
    min_length: int = 16,
    max_depth: int = 10,
    max_args: int = 10,
    branch_p: float = 0.25,
) -> tuple[str, int]:
    """One (Source, Target) pair with min_length <= length <= max_length."""
    while True:
        try:
            tree = _tree(rng, 1, [max_length], max_depth, max_args, branch_p, force_op=True)
        except _TooLong:
            continue
        if tree_length(tree) >= min_length:
            return to_string(tree), value(tree)


class ListOps(Task):
    name = "ListOps"
    hub_id = "fengyang0317/listops-64"
    split_plan = {"train": ("train",), "validation": ("validation",), "test": ("test",)}
    fields = {"Source": "str", "Target": "digit"}
    max_new_tokens = 10
    epochs = 1
    max_length = 512
    chat_max_length = 256
    synthetic_sizes = {"train": 2000, "validation": 250, "test": 250}
    # LRA's ListOps sizes, assumed for listops-64 (its card gives none)
    public_rows = {"train": 96000, "validation": 2000, "test": 2000}
    # tokens per training row, measured on 2,000 generated train rows (seed 0; no public file here)
    mean_tokens = 150
    # fmt: off
    length_quantiles = (
        97, 99, 102, 106, 107, 111, 114, 119, 125, 130, 137, 144,
        149, 157, 167, 176, 191, 203, 222, 252, 266, 275, 284,
    )
    # fmt: on
    generator_max_length = 64  # listops-64

    def prompt(self, ex: dict[str, Any]) -> str:
        return (
            "Evaluate the value of the following nested list expression.\n"
            "Return only the final numeric result inside <answer>\u2026</answer>.\n\n"
            f"Expression:\n{ex['Source']}\n"
        )

    def completion(self, ex: dict[str, Any]) -> str:
        return f"<answer>{ex['Target']}</answer>"

    def label(self, ex: dict[str, Any]) -> str:
        return str(ex["Target"])

    def score(self, output: str, label: Any) -> bool:
        m = _ANSWER.search(output)
        if m is None:
            return False
        try:
            return int(m.group(1).strip()) == int(label)
        except ValueError:
            return False

    def score_strict(self, output: str, label: Any) -> bool:
        """The official parser, reading only ASCII digits inside the first tag pair
        (``int()`` also takes "٧", "+7" and "1_0")."""
        m = _ANSWER.search(output)
        number = _ASCII_NUMBER.fullmatch(m.group(1)) if m else None
        return number is not None and int(number.group(1)) == int(label)

    def synthetic_split(self, split: str, n: int, seed: int) -> list[dict[str, Any]]:
        rng = random.Random(f"ListOps-{split}-{seed}")
        max_len = self.generator_max_length
        pairs = [generate(rng, max_length=max_len, min_length=max_len // 4) for _ in range(n)]
        return [{"Source": s, "Target": t} for s, t in pairs]
