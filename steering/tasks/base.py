"""Task: one dataset of the paper with its exact protocol (PROTOCOL.md sections 2-4).

A task knows its source (hub id and config, or local files in the same schema), how its
source splits are carved into train / validation / test, its prompt, completion, label and
answer parser, its generation budget, epochs and training max length, and a generator of
well-formed synthetic rows in its source schema for offline runs.

Carving: carve(S, p) = S.shuffle(seed=42).train_test_split(test_size=p, seed=42) (the
``datasets`` library); each task's ``split_plan`` says which part of which source split each
of train / validation / test is, a part possibly carved again (ASDiv, MNLI: train and a
held-out part, the held-out part halved into validation and test).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from steering.tasks.files import DataError, is_prepared, read_prepared, read_source

# Where a task's length profile is taken: every 5 %, then finer in the tail, which decides the
# longest row of a batch (a batch of 8 draws a row from the top 5 % a third of the time).
LENGTH_PROBS = (*(i / 20 for i in range(20)), 0.975, 0.99, 1.0)


def length_profile(lengths) -> tuple[int, ...]:
    """A split's row lengths (tokens) at ``LENGTH_PROBS``: ``Task.length_quantiles``."""
    ordered = sorted(lengths)
    last = len(ordered) - 1
    return tuple(ordered[min(last, round(p * last))] for p in LENGTH_PROBS) if ordered else ()


if TYPE_CHECKING:  # datasets is imported where rows are read or made (it costs ~1 s)
    from datasets import Dataset, DatasetDict

CARVE_SEED = 42

# field type name -> (check, description); used for row validation and error messages
FIELD_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "a boolean"),
    "digit": (
        lambda v: (
            (isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 9)
            or (isinstance(v, str) and len(v) == 1 and v in "0123456789")
        ),
        "a digit 0-9 (integer, or a one-digit string)",
    ),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "number": (
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v),
        "a finite number",
    ),
    "list[str]": (
        lambda v: isinstance(v, list) and bool(v) and all(isinstance(x, str) for x in v),
        "a non-empty list of strings",
    ),
    "choices": (
        lambda v: (
            isinstance(v, dict)
            and FIELD_TYPES["list[str]"][0](v.get("text"))
            and FIELD_TYPES["list[str]"][0](v.get("label"))
            and len(v["text"]) == len(v["label"])
        ),
        "an object {text: [str], label: [str]} with lists of equal length",
    ),
}


def carve(split: Dataset, test_size: float) -> DatasetDict:
    """The protocol's carving: shuffle(seed=42) then train_test_split(test_size, seed=42)."""
    return split.shuffle(seed=CARVE_SEED).train_test_split(test_size=test_size, seed=CARVE_SEED)


class Task:
    """Base class; subclasses set the class attributes and implement the four protocol methods."""

    name: ClassVar[str]
    hub_id: ClassVar[str]
    hub_config: ClassVar[str | None] = None
    # target split -> (source split,) taken whole, or (source split, test_size, "train"|"test")
    # for that part of carve(source, test_size); more (test_size, part) pairs carve the part
    # again (``cut`` says how each carve is made)
    split_plan: ClassVar[dict[str, tuple]]
    fields: ClassVar[dict[str, str]]  # source column -> FIELD_TYPES name
    max_new_tokens: ClassVar[int]
    epochs: ClassVar[int]
    max_length: ClassVar[int]
    chat_max_length: ClassVar[int | None] = None  # Gemma chat-template runs, when it differs
    protocol_version: ClassVar[int] = 1
    synthetic_sizes: ClassVar[dict[str, int]]  # rows per source split of generated data
    synthetic_min_rows: ClassVar[int] = 4  # per generated split, whatever the scale
    # For budgets (scripts/plan.py): rows of the public data per carved split, and the tokens
    # of a training row (prompt + completion, before truncation): their mean, and their
    # quantiles at LENGTH_PROBS (the padding a padded batch feeds: steering/pipeline/padding.py).
    # Measured with SmolLM2-135M's tokenizer (plain prompts) on the real public rows by
    # `prepare_data.py --tokenizer` (its "length profile" line); () where none was measured.
    public_rows: ClassVar[dict[str, int]] = {}
    mean_tokens: ClassVar[int] = 0
    length_quantiles: ClassVar[tuple[int, ...]] = ()

    # --- the protocol ------------------------------------------------------------------------
    def prompt(self, ex: dict[str, Any]) -> str:
        raise NotImplementedError

    def completion(self, ex: dict[str, Any]) -> str:
        raise NotImplementedError

    def label(self, ex: dict[str, Any]) -> Any:
        raise NotImplementedError

    def score(self, output: str, label: Any) -> bool:
        """The official parser: is the generated continuation ``output`` correct for ``label``?"""
        raise NotImplementedError

    def score_strict(self, output: str, label: Any) -> bool:
        """The official parser with its documented quirks fixed (what the model really got);
        ``score`` stays the paper-comparable number. Tasks without quirks inherit ``score``."""
        return self.score(output, label)

    def choices(self, ex: dict[str, Any]) -> int | None:
        """How many answers the row offers to choose from; None where the answer is open or
        one of a fixed set of classes (then ``chance`` takes the majority class)."""
        return None

    def chance(self, rows) -> float:
        """What guessing scores on ``rows``: uniform over each row's choices where the task
        offers choices (ARC, AQuA, Winogrande), else the share of the most common label (the
        majority class: BoolQ, ListOps; GSM8K's most common number)."""
        rows = list(rows)
        if not rows:
            return 0.0
        offered = [self.choices(ex) for ex in rows]
        if all(offered):
            return sum(1 / n for n in offered) / len(rows)
        labels = Counter(str(self.label(ex)) for ex in rows)
        return labels.most_common(1)[0][1] / len(rows)

    def check_row(self, ex: dict[str, Any]) -> str | None:
        """A task-specific problem with a well-typed row (a message), or None."""
        return None

    def synthetic_split(self, split: str, n: int, seed: int) -> list[dict[str, Any]]:
        """``n`` generated rows in the source schema, deterministic in (split, seed)."""
        raise NotImplementedError

    def cut(self, split: Dataset, test_size: float, depth: int) -> DatasetDict:
        """The ``depth``-th carve of a split plan (0: of the source split): ``carve``; a task
        whose later carves differ overrides it."""
        return carve(split, test_size)

    def max_length_for(self, chat: bool) -> int:
        """Training max length: the chat-template value for Gemma runs where one is specified."""
        return self.chat_max_length if chat and self.chat_max_length else self.max_length

    # --- splits ------------------------------------------------------------------------------
    @property
    def source_splits(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(plan[0] for plan in self.split_plan.values()))

    def make_splits(self, raw: DatasetDict) -> DatasetDict:
        """Carve the source splits ``raw`` into train / validation / test as specified."""
        missing = [s for s in self.source_splits if s not in raw]
        if missing:
            raise DataError(
                f"{self.name}: source split(s) {missing} missing; have {sorted(raw)} "
                f"(needed: {list(self.source_splits)})"
            )
        from datasets import DatasetDict

        carved: dict[tuple, DatasetDict] = {}
        out = {}
        for target, plan in self.split_plan.items():
            split = raw[plan[0]]
            for depth, i in enumerate(range(1, len(plan), 2)):
                size, part = plan[i], plan[i + 1]
                key = plan[: i + 1]  # the source, the parts taken before, this size
                if key not in carved:
                    try:
                        carved[key] = self.cut(split, size, depth)
                    except ValueError as e:  # too few rows to leave both parts a row
                        raise DataError(
                            f"{self.name}: cannot carve '{target}' out of source split "
                            f"'{plan[0]}' ({len(raw[plan[0]])} rows): {e}"
                        ) from e
                split = carved[key][part]
            out[target] = split
        return DatasetDict(out)

    def validate(self, splits: DatasetDict) -> None:
        """Fail on the first missing or mistyped field, naming the split, row and field."""
        for split, ds in splits.items():
            if len(ds) == 0:
                raise DataError(f"{self.name}: split '{split}' is empty")
            absent = [f for f in self.fields if f not in ds.column_names]
            if absent:
                raise DataError(
                    f"{self.name}: split '{split}' has no column(s) {absent}; columns are "
                    f"{ds.column_names}; expected {self.schema_text()}"
                )
            columns = {f: ds[f] for f in self.fields}
            for i in range(len(ds)):
                for field, kind in self.fields.items():
                    value = columns[field][i]
                    check, description = FIELD_TYPES[kind]
                    if not check(value):
                        raise DataError(
                            f"{self.name}: split '{split}' row {i}: field '{field}' must be "
                            f"{description}, got {type(value).__name__} {str(value)[:60]!r}"
                        )
                problem = self.check_row({f: columns[f][i] for f in self.fields})
                if problem:
                    raise DataError(f"{self.name}: split '{split}' row {i}: {problem}")

    def schema_text(self) -> str:
        return ", ".join(f"{f} ({FIELD_TYPES[k][1]})" for f, k in self.fields.items())

    # --- loading -----------------------------------------------------------------------------
    def load(self, data_dir: str | Path | None = None) -> DatasetDict:
        """train / validation / test, from ``data_dir`` if given, else from the hub.

        ``data_dir`` holds either the source splits (``<split>.jsonl``/``.json``/``.parquet``
        in the source schema; they are carved here) or the output of
        ``scripts/prepare_data.py`` (already carved; recognised by its ``manifest.json``).
        """
        if data_dir is not None:
            if is_prepared(data_dir):
                return read_prepared(self, data_dir)
            raw = read_source(self, data_dir)
        else:
            raw = self.load_hub()
        self.validate(raw)
        return self.make_splits(raw)

    def load_hub(self) -> DatasetDict:
        """The source splits from the Hugging Face hub (or its local cache)."""
        import datasets

        try:
            loaded = datasets.load_dataset(self.hub_id, self.hub_config)
        except Exception as e:  # offline, missing cache, no network: all mean "not available"
            offline = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("HF_DATASETS_OFFLINE")
            reason = (
                "the hub is disabled (HF_HUB_OFFLINE=1)" if offline else "the hub cannot be reached"
            )
            raise DataError(
                f"{self.name}: dataset {self.hub_id}"
                f"{f' ({self.hub_config})' if self.hub_config else ''} is not in the local "
                f"cache and {reason}: {type(e).__name__}: {str(e)[:200]}\n"
                f"Provide local files instead: a directory with "
                f"{', '.join(f'{s}.jsonl' for s in self.source_splits)} (or .json / .parquet) "
                f"with columns {self.schema_text()}, and pass it as data_dir (CLI: --data-dir). "
                f"Or generate stand-in data: python scripts/prepare_data.py --dataset-name "
                f"{self.name} --synthetic --out results/data/{self.name}"
            ) from e
        from datasets import DatasetDict

        return DatasetDict({s: loaded[s] for s in self.source_splits if s in loaded})

    def synthetic(self, seed: int = 0, scale: float = 1.0) -> DatasetDict:
        """Generated source splits (``synthetic_sizes`` times ``scale`` rows each)."""
        from datasets import Dataset, DatasetDict

        return DatasetDict(
            {
                split: Dataset.from_list(
                    self.synthetic_split(
                        split, max(self.synthetic_min_rows, round(n * scale)), seed
                    )
                )
                for split, n in self.synthetic_sizes.items()
            }
        )

    def __repr__(self) -> str:
        return f"<Task {self.name} v{self.protocol_version}>"
