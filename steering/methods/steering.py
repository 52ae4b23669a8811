"""Post-block steering, the paper's method (``SteeredModel``), as a registered method.

Its settings are a ``SteeringConfig``: in the pipeline the variant keys ``kind``, ``rank``,
``activation``, ``sites`` (``block``, ``submodules``, ``submodules_official``) and
``positions``; on the training script the official flags ``--adapter-rank``,
``--no-adapter``, ``--linear``, ``--nonlinearity``, ``--submodules`` (``--official-sites``)
and ``--intervene-last``. Its checkpoint is ours (``steering_config.json`` +
``adapter.safetensors``, no ``method.json``); evaluation also takes an official checkpoint
(``pytorch_model.bin``), whose activation and positions come from the flags, and the flags a
user gives must agree with what the checkpoint records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from steering import config
from steering.methods.base import Method, Setting
from steering.runtime.precision import PRECISIONS

# The pipeline's `sites` values -> the training script's flags.
SITES_FLAGS = {
    "block": [],
    "submodules": ["--submodules"],
    "submodules_official": ["--submodules", "--official-sites"],
}
ACTIVATIONS = list(config.ACTIVATIONS)  # the names; steering/adapters.py holds the functions
VECTOR_UNREAD = ("rank", "activation")  # what a steering vector (kind: vector) has not

STEERING_SETTINGS = (
    Setting("kind", {"enum": ["adapter", "vector"]}, "adapter", "low-rank adapter or one vector"),
    Setting("rank", {"type": "integer", "minimum": 1}, 8, "the adapter's rank"),
    Setting("activation", {"enum": ACTIVATIONS}, "silu", "null: the linear variant"),
    Setting("sites", {"enum": list(SITES_FLAGS)}, "block", "where the adapters attach"),
    Setting("positions", {"enum": ["all", "last"]}, "all", "last: only the final token"),
)


def steering_flags(entry: dict[str, Any]) -> list[str]:
    """The official training flags of a variant's steering keys."""
    if entry.get("kind", "adapter") == "vector":
        args = ["--no-adapter"]
    else:
        args = ["--adapter-rank", str(entry.get("rank", 8))]
        activation = entry.get("activation", "silu")
        args += ["--linear"] if activation is None else ["--nonlinearity", activation]
    args += SITES_FLAGS[entry.get("sites", "block")]
    if entry.get("positions", "all") == "last":
        args.append("--intervene-last")
    return args


def read_by(keys: tuple[str, ...], raw: dict[str, Any]) -> tuple[str, ...]:
    """``keys`` less those a steering vector has not, when ``raw`` is a vector variant."""
    if raw.get("kind") != "vector":
        return keys
    return tuple(k for k in keys if k not in VECTOR_UNREAD)


def steering_of(entry: dict[str, Any]):
    """A pipeline variant's ``SteeringConfig`` (what its training flags make of it)."""
    from steering.config import SteeringConfig

    sites = {"block": ("block",), "submodules": ("attn", "mlp")}
    return SteeringConfig(
        kind=entry.get("kind", "adapter"),
        rank=entry.get("rank", 8),
        activation=entry.get("activation", "silu"),
        sites=sites.get(entry.get("sites", "block"), ("official_attn", "mlp")),
        positions=entry.get("positions", "all"),
    )


def steering_count(shape, steering) -> int:
    """Trainable parameters of post-block steering on a model of ``shape``: 2 r H per
    adapter, H per vector; one per layer and site."""
    from steering.config import SteeringConfig

    config = steering or SteeringConfig()
    per_site = shape.hidden if config.kind == "vector" else 2 * config.rank * shape.hidden
    return len(config.layer_indices(shape.layers)) * len(config.sites) * per_site


def vector_problems(where: str, raw: dict[str, Any]) -> list[str]:
    if raw.get("kind") != "vector":
        return []
    return [
        f"{where}: '{key}' does not apply to a steering vector (kind: vector); remove it"
        for key in VECTOR_UNREAD
        if key in raw
    ]


def add_steering_arguments(
    parser, vector: bool = True, official_sites: bool = True, last: bool = True
) -> None:
    """The official steering flags (``train_joint.py`` takes fewer of them)."""
    parser.add_argument("--adapter-rank", type=int, default=8)
    if vector:
        parser.add_argument(
            "--no-adapter", action="store_true", help="a fixed steering vector per layer"
        )
    parser.add_argument("--linear", action="store_true", help="identity activation")
    parser.add_argument("--nonlinearity", default="silu", choices=[a for a in ACTIVATIONS if a])
    parser.add_argument(
        "--submodules", action="store_true", help="adapters on the attention and MLP outputs"
    )
    if official_sites:
        parser.add_argument(
            "--official-sites",
            action="store_true",
            help="with --submodules: the official attn site",
        )
    if last:
        parser.add_argument(
            "--intervene-last", action="store_true", help="steer only the last token"
        )


def steering_from_args(a):
    """The ``SteeringConfig`` the official flags describe."""
    from steering.config import SteeringConfig

    official = getattr(a, "official_sites", False)
    if official and not a.submodules:
        raise ValueError("--official-sites only applies with --submodules")
    sites = (
        ("block",)
        if not a.submodules
        else (("official_attn", "mlp") if official else ("attn", "mlp"))
    )
    return SteeringConfig(
        kind="vector" if getattr(a, "no_adapter", False) else "adapter",
        rank=a.adapter_rank,
        activation=None if a.linear else a.nonlinearity,
        sites=sites,
        positions="last" if getattr(a, "intervene_last", False) else "all",
    )


class Steering(Method):
    name = "steering"
    summary = "post-block low-rank steering (the paper's method): adapters or vectors"
    settings = STEERING_SETTINGS
    OPTIONS = {}  # its settings are a SteeringConfig (TrainSettings.steering)
    precisions = PRECISIONS

    def keys(self, raw: dict[str, Any]) -> tuple[str, ...]:
        return read_by(super().keys(raw), raw)

    def config_problems(self, where: str, raw: dict[str, Any]) -> list[str]:
        return vector_problems(where, raw)

    def packing_refusal(self, options: dict[str, Any], steering) -> str | None:
        if steering is not None and steering.positions == "last":
            return "last-token steering acts on each row's final prompt token"
        return None

    def train_flags(self, entry: dict[str, Any]) -> list[str]:
        return steering_flags(entry)

    def add_arguments(self, parser) -> None:
        add_steering_arguments(parser)

    def options_from_args(self, args) -> dict[str, Any]:
        return {}  # the steering flags make the SteeringConfig (steering_from_args)

    def steering_from_entry(self, entry: dict[str, Any]):
        return steering_of(entry)

    def variant_name(self, options: dict[str, Any], steering) -> str:
        return steering.variant_name()

    def build(self, base, options: dict[str, Any], steering=None, precision: str = "fp32"):
        from steering.config import SteeringConfig
        from steering.model import SteeredModel
        from steering.runtime.precision import trainable_dtype

        return SteeredModel(base, steering or SteeringConfig(), trainable_dtype(precision))

    def trainable_parameters(self, model) -> int:
        return model.num_trainable_parameters()

    def estimate(self, shape, options: dict[str, Any], steering=None) -> int:
        return steering_count(shape, steering)

    def base_parameters(self, model) -> int:
        return model.num_base_parameters()

    def save(self, model, path: Path, settings) -> None:
        model.save_pretrained(path)

    def load_on(self, base, path: Path, settings=None):
        return load_steered(settings, base, path)

    def provenance(self, model, path: Path | None) -> dict[str, Any]:
        return {"steering": model.steering_config.to_dict()}


def check_flags(s, config, source: str) -> None:
    """Every must-match flag the user gave must describe the checkpoint's steering."""
    actual = {
        "--no-adapter": config.kind == "vector",
        "--adapter-rank": config.rank if config.kind == "adapter" else None,
        "--submodules": config.sites != ("block",),
        "--intervene-last": config.positions == "last",
    }
    given = {
        "--no-adapter": s.no_adapter,
        "--adapter-rank": s.adapter_rank,
        "--submodules": s.submodules,
        "--intervene-last": s.intervene_last,
    }
    for flag, value in given.items():
        if value is not None and value != actual[flag]:
            raise ValueError(
                f"{flag}={value} disagrees with {source}, which was trained with "
                f"{flag}={actual[flag]} ({config.variant_name()}); drop the flag or pick the "
                f"matching checkpoint"
            )


def load_steered(s, base, path: Path):
    """Our checkpoint directory, or an official ``.bin`` / ``.safetensors`` (or a directory
    holding one), on ``base``; the must-match flags of ``s`` (``InferenceSettings``, or
    None: no flags, SiLU for an official file) checked."""
    from steering.checkpoint import CONFIG_NAME
    from steering.model import SteeredModel

    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    from steering.runtime.precision import trainable_dtype

    dtype = trainable_dtype(getattr(s, "precision", "fp32"))
    if path.is_dir() and (path / CONFIG_NAME).is_file():
        model = SteeredModel.from_pretrained(base, path, dtype)
    else:
        activation = s.activation if s is not None else "silu"
        last = s is not None and bool(s.intervene_last)
        positions = "last" if last else "all"
        model = SteeredModel.from_official_checkpoint(
            base, path, activation=activation, positions=positions, trainable_dtype=dtype
        )
    if s is not None:
        check_flags(s, model.steering_config, f"checkpoint {path}")
    return model
