"""The training methods, by name: one module each behind ``Method`` (``methods/base.py``),
one registry.

    METHODS["lora"].build(base, {"rank": 8})

``METHODS`` holds post-block steering, the untrained base model and the baselines; the
training scripts, training, evaluation, the pipeline and its config checks reach every
method through it. Adding a method: a module with a ``Method`` subclass, one line below, and
its tests. A method of your own, outside the package: list its module (a dotted name or a
``.py`` path) in the environment variable ``STEERING_METHODS`` (``os.pathsep`` between
several); the module's ``STEERING_METHODS`` list of ``Method`` subclasses is registered when
this package is first imported, in every process that imports it (the scripts, Snakemake and
its jobs, which inherit the environment). Keep torch imports inside its methods, so that the
pipeline plans without importing torch.

May import: ``loading``, the top-level modules (the steered model, its config and
checkpoint) and ``runtime``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

from steering.methods.base import METHOD_FILE, Method, Setting, read_method_file
from steering.methods.full import Full
from steering.methods.joint import Joint
from steering.methods.lora import Lora
from steering.methods.reft import Reft
from steering.methods.steering import Steering
from steering.methods.untrained import Untrained

METHODS: dict[str, Method] = {
    "steering": Steering(),
    "joint": Joint(),
    "lora": Lora(),
    "full": Full(),
    "reft": Reft(),
    "base": Untrained(),
}
DEFAULT = "steering"  # the method of a variant or run that names none
PLUGINS_VARIABLE = "STEERING_METHODS"


def get_method(name: str) -> Method:
    method = METHODS.get(name)
    if method is None:
        raise ValueError(f"unknown method {name!r}; valid names: {list(METHODS)}")
    return method


def register(method: type[Method] | Method) -> Method:
    """Add a method to the registry (a class or an instance); its name must be new and its
    settings must agree with those of other methods that share a key."""
    method = method() if isinstance(method, type) else method
    if not isinstance(method, Method):
        raise TypeError(f"{method!r} is not a steering.methods.Method")
    if method.name in METHODS:
        raise ValueError(f"a method named {method.name!r} is registered already")
    for setting in method.settings:
        for other in METHODS.values():
            for theirs in other.settings:
                if theirs.key == setting.key and theirs.schema != setting.schema:
                    raise ValueError(
                        f"method {method.name}: setting {setting.key!r} has schema "
                        f"{setting.schema}, but method {other.name}'s has {theirs.schema}; "
                        "give it another name"
                    )
    METHODS[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove a method added by ``register`` (the built-in ones stay)."""
    if name in BUILT_IN:
        raise ValueError(f"{name!r} is a built-in method")
    METHODS.pop(name, None)


def for_checkpoint(path: str | Path | None) -> Method:
    """The method that evaluates ``path``: none (the base model), a directory with
    ``method.json`` (its method), else post-block steering (ours, or an official file)."""
    if path is None:
        return METHODS["base"]
    path = Path(path)
    if path.is_dir() and (path / METHOD_FILE).is_file():
        name = read_method_file(path).get("method")
        if name not in METHODS:
            raise ValueError(
                f"{path / METHOD_FILE} names an unknown method {name!r}; known: {list(METHODS)}"
                f" (a method of your own: list its module in {PLUGINS_VARIABLE})"
            )
        return METHODS[name]
    return METHODS["steering"]


def trained_methods() -> list[str]:
    """Every method that trains (the untrained base model does not)."""
    return [name for name, m in METHODS.items() if m.trains]


def training_methods(script: str = "scripts/train.py") -> list[str]:
    """The methods a training script trains (``--method`` choices)."""
    return [name for name, m in METHODS.items() if m.trains and m.script == script]


def _load_plugins(spec: str) -> None:
    for entry in filter(None, spec.split(os.pathsep)):
        if entry.endswith(".py"):
            where = Path(entry)
            loaded = importlib.util.spec_from_file_location(f"steering_plugin_{where.stem}", where)
            if loaded is None or not where.is_file():
                raise ValueError(f"{PLUGINS_VARIABLE}: no Python file {entry}")
            module = importlib.util.module_from_spec(loaded)
            loaded.loader.exec_module(module)
        else:
            module = importlib.import_module(entry)
        found = getattr(module, "STEERING_METHODS", None)
        if not found:
            raise ValueError(
                f"{PLUGINS_VARIABLE}: {entry} defines no STEERING_METHODS list of Method classes"
            )
        for method in found:
            if getattr(method, "name", None) not in METHODS:
                register(method)


BUILT_IN = tuple(METHODS)
_load_plugins(os.environ.get(PLUGINS_VARIABLE, ""))

__all__ = [
    "DEFAULT",
    "METHODS",
    "METHOD_FILE",
    "Method",
    "Setting",
    "for_checkpoint",
    "get_method",
    "register",
    "trained_methods",
    "training_methods",
    "unregister",
]
