"""Rewards for reinforcement learning (GRPO) in TRL's reward-function form: each takes the
batch's completions (strings) and the dataset's columns by keyword, and returns one float per
completion, or None where the example has no reward (TRL then leaves it out).

The official GSM8K-GRPO pair (PROTOCOL.md section 8), weighted 1.0 and 2.0:

- ``format_reward``: 1.0 when the completion holds ``"\\n</think>\\n"`` exactly once, else 0.0;
- ``accuracy_reward``: math_verify's ``verify(gold, answer)``, gold parsed from
  ``"\\boxed{" + solution + "}"`` (None when it parses to nothing), the answer from the
  completion's first boxed or anchored LaTeX expression (none without an anchor); None when
  verification raises.

Every task of ``TASKS`` and ``EXTRA_TASKS`` gets rewards from its own parsers (``for_trl``):
accuracy under the official parser (the paper's number) and the strict one, and a format
reward where its training completion has a shape (``FORMATS``), so that GRPO trains any task.
Each is a plain function over (task, prompt, completion, label).

math_verify is imported on first use, so the tasks load without it.
"""

from __future__ import annotations

import json
import re
from typing import Any

THINK_CLOSE = "\n</think>\n"


def format_reward(completions: list[str], **kwargs: Any) -> list[float]:
    """1.0 for a completion that closes its thinking exactly once, else 0.0."""
    return [1.0 if c.count(THINK_CLOSE) == 1 else 0.0 for c in completions]


def _answer_config():
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import LatexExtractionConfig

    normalization = NormalizationConfig(
        nits=False, malformed_operators=False, basic_latex=True, boxed="all", units=True
    )
    return [
        LatexExtractionConfig(
            normalization_config=normalization,
            boxed_match_priority=0,
            try_extract_without_anchor=False,
        )
    ]


def accuracy_reward(
    completions: list[str], solution: list[str], **kwargs: Any
) -> list[float | None]:
    """1.0 where math_verify finds the completion's answer equal to ``solution``, else 0.0;
    None where the solution parses to nothing or verification fails."""
    from math_verify import LatexExtractionConfig, parse, verify

    answer_config = _answer_config()
    rewards: list[float | None] = []
    for completion, sol in zip(completions, solution, strict=True):
        gold = parse(
            "\\boxed{" + str(sol) + "}",
            extraction_mode="first_match",
            extraction_config=[LatexExtractionConfig()],
        )
        if len(gold) == 0:
            rewards.append(None)
            continue
        answer = parse(completion, extraction_mode="first_match", extraction_config=answer_config)
        try:
            rewards.append(float(verify(gold, answer)))
        except Exception:  # the official reward: a failed verification scores nothing
            rewards.append(None)
    return rewards


OFFICIAL = (format_reward, accuracy_reward)
OFFICIAL_WEIGHTS = (1.0, 2.0)


# --- every task: rewards from its own parsers --------------------------------------------------
# A completion's format, where the task's training completion has one (ours, not the official
# code's: it trains these tasks by supervised fine-tuning only); searched anywhere in the text.
FORMATS: dict[str, re.Pattern] = {
    "BoolQ": re.compile(r"Answer: (?:True|False)\."),
    "Winogrande": re.compile(r"Answer: Option[12]\."),
    "ListOps": re.compile(r"<answer>\d</answer>"),
    "GSM8K": re.compile(r"Answer: [-+]?[\d,]+(?:\.\d+)?"),
    "ARC_Challenge": re.compile(r"Answer: \(\w\) "),
    "AQuA": re.compile(r"Answer: [A-E]\."),
    "ASDiv": re.compile(r"<final>[^<]+</final>"),
    "SVAMP": re.compile(r"Answer: [-+]?[\d,]+(?:\.\d+)?"),
    "MAWPS": re.compile(r"Answer: [-+]?[\d,]+(?:\.\d+)?"),
    "MNLI": re.compile(r"Answer: (?:ENTAILMENT|NEUTRAL|CONTRADICTION)\."),
}


def accuracy(task, prompt: str, completion: str, label: Any) -> float:
    """1.0 when the task's official parser scores ``completion`` correct for ``label``."""
    return float(task.score(completion, label))


def accuracy_strict(task, prompt: str, completion: str, label: Any) -> float:
    """The same under the strict parser (the official one with its quirks fixed)."""
    return float(task.score_strict(completion, label))


def format_of(task, prompt: str, completion: str, label: Any) -> float | None:
    """1.0 when ``completion`` has the shape of the task's training completion; None for a
    task without a format."""
    pattern = FORMATS.get(task.name)
    return None if pattern is None else float(bool(pattern.search(completion)))


TASK_REWARDS = {"format": format_of, "accuracy": accuracy, "accuracy_strict": accuracy_strict}
# Weights as the official pair's (format 1, accuracy 2); the strict accuracy is logged only.
TASK_WEIGHTS = {"format": 1.0, "accuracy": 2.0, "accuracy_strict": 0.0}


def default_weights(dataset_name: str) -> dict[str, float]:
    """The rewards of a GRPO run on ``dataset_name`` and their default weights: the official
    pair on GSM8K-GRPO, else the task's (a format reward only where the task has a format)."""
    if dataset_name == "GSM8K-GRPO":
        return dict(zip(("format", "accuracy"), OFFICIAL_WEIGHTS, strict=True))
    return {k: w for k, w in TASK_WEIGHTS.items() if k != "format" or dataset_name in FORMATS}


def for_trl(task, weights: dict[str, float] | None = None):
    """The task's rewards as TRL reward functions over a dataset with ``prompt`` and ``label``
    (the label as JSON) columns, named for the log (``rewards/<name>/mean``), and their
    weights; the format reward only where the task has one."""
    weights = {**TASK_WEIGHTS, **(weights or {})}
    unknown = set(weights) - set(TASK_REWARDS)
    if unknown:
        raise ValueError(f"unknown reward(s) {sorted(unknown)}; valid: {list(TASK_REWARDS)}")
    funcs, out = [], []
    for name in default_weights(task.name):
        reward = TASK_REWARDS[name]

        def trl_reward(prompts, completions, label, _reward=reward, **kwargs):
            return [
                _reward(task, p, c, json.loads(lab))
                for p, c, lab in zip(prompts, completions, label, strict=True)
            ]

        trl_reward.__name__ = name
        funcs.append(trl_reward)
        out.append(weights[name])
    return funcs, out
