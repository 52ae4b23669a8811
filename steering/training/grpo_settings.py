"""The settings of a GSM8K-GRPO run (the official GRPO flags of ``scripts/train.py``) and the
checks that need no model: torch-free, so a bad value is refused before anything heavy loads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from steering.tasks.gsm8k_grpo import SYSTEM_PROMPT

GRAD_ACCUM = 4  # the official run's gradient accumulation (PROTOCOL.md section 8)


@dataclass(frozen=True)
class GRPOSettings:
    """The official GRPO flags of ``scripts/train.py`` and their defaults, plus ``max_steps``
    (the official run's fixed 1500; a flag here so that a short run is possible) and
    ``reward_weights`` (``(name, weight)`` pairs over the defaults: the official pair's 1 and
    2, a task's ``steering.tasks.rewards.TASK_WEIGHTS``)."""

    num_generations: int = 6
    max_prompt_length: int = 512
    max_completion_length: int = 1024
    system_prompt: str = SYSTEM_PROMPT
    max_steps: int = 1500
    reward_weights: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        for name in ("num_generations", "max_prompt_length", "max_completion_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        if self.num_generations < 2:
            raise ValueError(
                "--num-generations must be >= 2: GRPO's advantage compares the completions "
                "of one prompt with each other"
            )
        if self.max_steps < 1:
            raise ValueError("--max-steps must be >= 1")
        for name, weight in self.reward_weights:
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(f"--reward-weights {name}={weight}: a weight must be >= 0")

    @property
    def weights(self) -> dict[str, float]:
        return dict(self.reward_weights)

    def check(self, model_name: str, bs: int, world: int = 1, dataset_name: str = "") -> None:
        """What can be refused from the flags and the model's config alone."""
        check_batch(bs, GRAD_ACCUM, world, self.num_generations)
        check_context(model_name, self)
        if dataset_name:
            check_rewards(dataset_name, self.weights)


def check_rewards(dataset_name: str, weights: dict[str, float]) -> None:
    """Each weighted reward exists for the dataset, and some reward is weighted."""
    from steering.tasks.rewards import default_weights

    names = default_weights(dataset_name)
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(
            f"--reward-weights: no reward {', '.join(unknown)} on {dataset_name}; its rewards: "
            f"{', '.join(names)}"
        )
    if not any({**names, **weights}.values()):
        raise ValueError("--reward-weights: every weight is 0, so GRPO would learn nothing")


def parse_weights(items: list[str]) -> tuple[tuple[str, float], ...]:
    """``["accuracy=1", "format=0.5"]`` as ``(name, weight)`` pairs; a one-line error for an
    item that is not ``NAME=NUMBER``."""
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            pairs.append((name, float(value)))
        except ValueError:
            raise ValueError(
                f"--reward-weights {item!r}: expected NAME=WEIGHT, e.g. accuracy=2"
            ) from None
    return tuple(pairs)


def check_batch(bs: int, grad_accum: int, world: int, num_generations: int) -> None:
    """Each generation batch (bs x processes x accumulation steps completions) must hold whole
    groups of ``num_generations`` completions of one prompt; raises saying which to change."""
    batch = bs * world * grad_accum
    if batch % num_generations:
        fits = [n for n in range(2, batch + 1) if batch % n == 0]
        raise ValueError(
            f"--num-generations {num_generations} does not divide the generation batch of "
            f"{batch} completions (--bs {bs} x {world} process(es) x {grad_accum} accumulation "
            f"steps): choose --num-generations in {fits}, or a --bs it divides"
        )


def check_context(model_name: str, g) -> None:
    """A prompt and a completion at their limits must fit the model's positions; said before
    any weight loads (from the model's config alone)."""
    from steering.training.memory import read_config

    config = read_config(model_name) or {}
    config = config.get("text_config", config)
    limit = config.get("max_position_embeddings")
    need = g.max_prompt_length + g.max_completion_length
    if limit is not None and need > limit:
        raise ValueError(
            f"--max-prompt-length {g.max_prompt_length} + --max-completion-length "
            f"{g.max_completion_length} = {need} tokens, more than {model_name} holds ({limit} "
            "positions): lower --max-completion-length"
        )
