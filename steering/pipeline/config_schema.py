"""The pipeline config's JSON schema, and validation against it with defaults (no torch).

``config/schema.yaml`` describes the structure and every key that belongs to no method:
models, datasets, seeds, splits, training, resources, and of a variant its training
overrides, paper name and sweep. Each method's own keys (kinds, ranks, activations, the LoRA
and ReFT settings, a plug-in's keys) live in its module (``steering.methods``): ``load`` adds
them to the variants' properties, and the method names to the ``method`` enum, so the schema
and the code that reads the keys cannot disagree.

``validate`` lists every violation at once (path and reason), then fills in the defaults:
the schema's (as Snakemake's ``validate`` does), then the settings of each variant's method.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from steering.methods import DEFAULT, METHODS, get_method


def load(path: str | Path) -> dict[str, Any]:
    """``config/schema.yaml`` with every registered method's settings added."""
    schema = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    variant = schema["properties"]["variants"]["additionalProperties"]
    properties = variant.setdefault("properties", {})
    properties["method"] = {
        "enum": list(METHODS),
        "default": DEFAULT,
        "description": "; ".join(f"{m.name}: {m.summary}" for m in METHODS.values()),
    }
    for method in METHODS.values():
        for setting in method.settings:
            if setting.key in properties and setting.key not in _owned(properties):
                raise ValueError(
                    f"method {method.name}'s setting {setting.key!r} is a key of "
                    f"{path} already; give the setting another name"
                )
            properties.setdefault(setting.key, {**setting.schema, "x-method-setting": True})
    return schema


def _owned(properties: dict[str, Any]) -> set[str]:
    return {k for k, v in properties.items() if isinstance(v, dict) and v.get("x-method-setting")}


def value_schema(schema: dict[str, Any], key: str) -> dict[str, Any]:
    """The schema of one value of variant key ``key`` (``$defs`` attached, for ``$ref``)."""
    variant = schema["properties"]["variants"]["additionalProperties"]
    return {**variant["properties"][key], "$defs": schema.get("$defs", {})}


def errors(config: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Every violation of ``schema`` by ``config``: ``<path>: <reason>``, in path order."""
    from jsonschema import Draft202012Validator

    found = sorted(
        Draft202012Validator(schema).iter_errors(config),
        key=lambda e: [str(p) for p in e.absolute_path],
    )
    return [f"{'.'.join(map(str, e.absolute_path)) or 'the config'}: {e.message}" for e in found]


def fill_defaults(config: dict[str, Any], schema: dict[str, Any]) -> None:
    """The schema's defaults into a valid ``config``, in place, then each variant's
    method's (a swept variant's points inherit them)."""
    from jsonschema import Draft202012Validator, validators

    check_properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, subschema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from check_properties(validator, properties, instance, subschema)

    filler = validators.extend(Draft202012Validator, {"properties": set_defaults})
    for _ in filler(schema).iter_errors(config):
        pass  # validity was checked before; this pass only fills
    for entry in config.get("variants", {}).values():
        for key, value in get_method(entry["method"]).defaults().items():
            entry.setdefault(key, copy.deepcopy(value))
