"""Semantic checks of a pipeline config, the ones its JSON schema cannot express.

The schema (``config/schema.yaml``) checks types, ranges, names and unknown keys one value at
a time. These checks look across values and files, before any job is scheduled:

- a key repeated in a YAML mapping (YAML keeps the last one, so a variant silently vanishes);
- a variant key that its method never reads (``lora_rank`` on a steering variant, ``rank`` on
  a steering vector, training settings on the untrained ``base``), which would otherwise be
  ignored without a word;
- combinations the method cannot run (joint adaptation with a vector or last-token steering);
- a dataset option that its ``source`` never reads, and a local ``data_dir`` that is missing;
- a ``sweep`` that cannot mean what it says: not a mapping of lists, an empty or repeated
  list, a value the key's schema refuses, a key no method reads or this variant's method does
  not read, a key that is also set on the variant, seeds (they come from ``seeds``), a sweep
  on ``base``, or a sweep without the validation split to select on;
- two model or two variant names (sweep points included) for the same thing (the grid would
  train and report it twice, under two names);
- an ``lm_eval`` block naming variants that do not exist or are not trained, a missing
  ``include_path``, or lm-eval not installed (``steering/pipeline/lm_eval_jobs.py``);
- an ``analysis`` block for datasets without runs, without a ``full`` run, or with ranks
  above a model's hidden size (``steering/pipeline/analysis_jobs.py``).

``check`` raises ``GridConfigError`` listing every problem, each with where it is and what to
do. The Snakefile calls it after schema validation; it imports no torch and no snakemake.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from steering.methods import DEFAULT, METHODS, get_method
from steering.methods.base import TRAINING
from steering.pipeline import analysis_jobs, config_schema, jobs, lm_eval_jobs, placement, sweep


def method_keys() -> dict[str, tuple[str, ...]]:
    """A variant key -> the methods that read it (from the registry; ``method``, ``paper``
    and ``sweep`` are read for every method)."""
    out: dict[str, list[str]] = {}
    for name, method in METHODS.items():
        for key in method.keys({}):
            out.setdefault(key, []).append(name)
    for key in TRAINING:  # read by every training method, so never a key of no method
        out.setdefault(key, [])
    return {k: tuple(v) for k, v in out.items()}


# Keys a sweep may not vary, and why.
NOT_SWEPT = {
    "seed": "seeds come from the top-level 'seeds' list, and every point runs with each",
    "seeds": "seeds come from the top-level 'seeds' list, and every point runs with each",
    "method": "a sweep varies one method's settings; make one variant per method",
    "paper": "the paper's name labels the variant, not one of its points",
    "sweep": "sweeps do not nest; put every key in one sweep",
}
# A dataset key -> the sources that read it.
SOURCE_KEYS = {
    "data_dir": ("local",),
    "synthetic_seed": ("synthetic",),
    "synthetic_scale": ("synthetic",),
}


class GridConfigError(ValueError):
    """The config passes its schema but cannot mean what it says."""


class _Loader(yaml.SafeLoader):
    """A SafeLoader that records repeated mapping keys instead of keeping the last silently."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self.repeated: list[str] = []

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in seen:
                self.repeated.append(
                    f"line {line}: key {key!r} repeats the one on line {seen[key]}; YAML keeps "
                    "only the last, so rename or remove one"
                )
            seen.setdefault(key, line)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A config file's mapping; ValueError in one line naming the file, line and column of a
    YAML error (not a traceback), or the file that cannot be read."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise FileNotFoundError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        at = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        what = " ".join(str(getattr(e, "problem", None) or e).split())
        raise ValueError(f"config file {path} is not valid YAML:{at} {what}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} holds a {type(data).__name__}, not a mapping")
    return data


def repeated_keys(path: str | Path) -> list[str]:
    """Every repeated mapping key in the YAML file at ``path`` (``<path> line N: ...``)."""
    loader = _Loader(Path(path).read_text(encoding="utf-8"))
    try:
        loader.get_single_data()
    finally:
        loader.dispose()
    return [f"{path} {problem}" for problem in loader.repeated]


def _variant_problems(name: str, raw: dict[str, Any]) -> list[str]:
    method_name = raw.get("method", DEFAULT)
    where = f"variants.{name} (method {method_name})"
    keys = method_keys()
    out = []
    for key in raw:
        users = keys.get(key)
        if users is not None and method_name not in users:
            out.append(
                f"{where}: '{key}' is only read by method(s) {', '.join(users)}; remove it "
                "or change the method"
            )
    return out + get_method(method_name).config_problems(where, raw)


def sweepable(raw: dict[str, Any]) -> list[str]:
    """The keys a sweep on this variant may vary: what its method reads."""
    return sorted(get_method(raw.get("method", DEFAULT)).keys(raw))


def _sweep_problems(name: str, raw: dict[str, Any], schema: dict | None) -> list[str]:
    """What is wrong with variant ``name``'s ``sweep`` (``raw`` as written)."""
    where, spec = f"variants.{name}", raw["sweep"]
    method = raw.get("method", DEFAULT)
    if not get_method(method).trains:
        return [
            f"{where}: a base variant (the untrained model) trains nothing, so there is "
            "nothing to sweep; remove 'sweep'"
        ]
    if not isinstance(spec, dict) or not spec:
        return [
            f"{where}: 'sweep' must map settings to lists of values, e.g. "
            "sweep: {lr: [0.001, 0.002]}"
        ]
    allowed = sweepable(raw)
    keys = method_keys()
    out = []
    for key, values in spec.items():
        at = f"{where}.sweep.{key}"
        if key in NOT_SWEPT:
            out.append(f"{at}: cannot be swept: {NOT_SWEPT[key]}")
        elif key not in keys:
            out.append(
                f"{at}: no method reads '{key}'; method {method} can sweep {', '.join(allowed)}"
            )
        elif key not in allowed:
            why = (
                "a steering vector (kind: vector) has no rank or activation"
                if method in keys[key]
                else f"it is only read by method(s) {', '.join(keys[key])}"
            )
            out.append(
                f"{at}: method {method} does not read '{key}' ({why}); it can sweep "
                + ", ".join(allowed)
            )
        elif key in raw:
            out.append(
                f"{at}: '{key}' is also set on the variant ({raw[key]!r}); set it or sweep "
                "it, not both"
            )
        elif not isinstance(values, list):
            out.append(f"{at}: must be a list of values, e.g. [{values!r}]; got {values!r}")
        elif not values:
            out.append(f"{at}: the list is empty; give at least one value")
        else:
            out += _value_problems(at, key, values, schema)
    return out


def _value_problems(at: str, key: str, values: list, schema: dict | None) -> list[str]:
    out = []
    repeated = [v for i, v in enumerate(values) if any(_same(v, w) for w in values[:i])]
    if repeated:
        out.append(f"{at}: repeats {', '.join(map(repr, repeated))}; list each value once")
    for value in values:
        try:
            sweep.format_value(value)
        except ValueError as e:
            out.append(f"{at}: {e}")
            continue
        out += [f"{at}: {message}" for message in _schema_errors(schema, key, value)]
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal as settings: 1 and 1.0 are, True and 1 are not."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def _schema_errors(schema: dict | None, key: str, value: Any) -> list[str]:
    """The schema's complaints about ``value`` for variant key ``key`` (none without one)."""
    if schema is None:
        return []
    import jsonschema

    validator = jsonschema.Draft202012Validator(config_schema.value_schema(schema, key))
    return [e.message for e in validator.iter_errors(value)]


def _point_problems(name: str, raw: dict[str, Any]) -> list[str]:
    """Combinations that only some points of a (well-formed) sweep make impossible."""
    own = {k: v for k, v in raw.items() if k != "sweep"}
    found = set(_variant_problems(name, own))
    out = []
    for point in sweep.points(raw["sweep"]):
        label = sweep.run_name(name, point)
        for problem in _variant_problems(label, {**own, **point}):
            if problem.replace(f"variants.{label} ", f"variants.{name} ", 1) not in found:
                out.append(problem)
    return out


def _dataset_problems(name: str, raw: dict[str, Any], workdir: Path) -> list[str]:
    source = raw.get("source", "hub")
    out = [
        f"datasets.{name}: '{key}' is only read with source: {' or '.join(users)} (this one "
        f"is {source}); remove it or change the source"
        for key, users in SOURCE_KEYS.items()
        if key in raw and source not in users
    ]
    if source == "local" and "data_dir" in raw and not (workdir / raw["data_dir"]).is_dir():
        out.append(
            f"datasets.{name}: data_dir '{raw['data_dir']}' is not a directory (relative "
            f"paths are from {workdir}); it should hold the source-split files"
        )
    return out


def _gguf_problems(config: dict[str, Any], workdir: Path) -> list[str]:
    """A ``gguf:`` model's file must be there before the run: the path, or the installed
    package holding it (found from its metadata; nothing is imported or converted here)."""
    from steering.loading import gguf

    out = []
    for name, model in config["models"].items():
        spec = model.get("gguf")
        if spec is None:
            continue
        if "path" in spec and not (workdir / spec["path"]).is_file():
            out.append(
                f"models.{name}: gguf path '{spec['path']}' is not a file (relative paths are "
                "read from the working directory); give the path of a .gguf file"
            )
        elif "package" in spec:
            try:
                gguf.from_package(spec["package"], spec["file"])
            except gguf.GGUFError as e:
                out.append(f"models.{name}: {e}")
    return out


def _precision_problems(where: str, raw: dict[str, Any]) -> list[str]:
    """``dtype`` (the older key) and ``precision`` set together must say the same."""
    from steering.runtime.precision import FROM_DTYPE

    dtype, precision = raw.get("dtype"), raw.get("precision")
    if dtype is None or precision is None or FROM_DTYPE.get(dtype) == precision:
        return []
    return [f"{where}: dtype {dtype} and precision {precision} disagree; keep precision alone"]


def _same_entries(section: str, entries: dict[str, dict], ignore: tuple[str, ...]) -> list[str]:
    """Names in ``section`` whose settings are identical (apart from ``ignore``)."""
    first: dict[str, str] = {}
    out = []
    for name, entry in entries.items():
        key = json.dumps({k: v for k, v in entry.items() if k not in ignore}, sort_keys=True)
        if key in first:
            out.append(
                f"{section}.{name} has the same settings as {section}.{first[key]}: the grid "
                "would run and report it twice; remove one (or use seeds to repeat a run)"
            )
        first.setdefault(key, name)
    return out


def _as_run(config: dict[str, Any], variants: dict[str, dict]) -> dict[str, dict]:
    """Each variant with the training settings it runs with on every dataset filled in
    (variant over dataset over ``training``), so ``{}`` and ``{lr: 0.0009}`` under a
    ``training`` rate of 0.0009 compare as the same run, and two variants that differ on any
    dataset never do."""
    training = config.get("training", {})
    out = {}
    for name, entry in variants.items():
        per_dataset = {}
        for dataset, options in config["datasets"].items():
            settings = {k: training.get(k) for k in TRAINING}
            settings.update(
                {k: (options or {})[k] for k in TRAINING if (options or {}).get(k) is not None}
            )
            settings.update({k: entry[k] for k in TRAINING if k in entry})
            per_dataset[dataset] = settings
        out[name] = {**{k: v for k, v in entry.items() if k not in TRAINING}, "runs": per_dataset}
    return out


def problems(
    config: dict[str, Any],
    raw: dict[str, Any] | None = None,
    workdir: str | Path = ".",
    schema: dict | None = None,
) -> list[str]:
    """Every semantic problem of a schema-valid ``config``.

    ``raw`` is the config as written, before the schema filled in defaults (so a default
    value does not count as a key the user set); it defaults to ``config``. ``schema`` (the
    parsed ``config/schema.yaml``) checks each swept value as if it were set on the variant.
    """
    raw = config if raw is None else raw
    out, broken = [], set()
    for name, variant in raw.get("variants", {}).items():
        variant = variant or {}
        out += _variant_problems(name, {k: v for k, v in variant.items() if k != "sweep"})
        if "sweep" in variant:
            found = _sweep_problems(name, variant, schema)
            out += found or _point_problems(name, variant)
            broken.update([name] if found else [])
    for name, dataset in raw.get("datasets", {}).items():
        out += _dataset_problems(name, dataset or {}, Path(workdir))
    out += _gguf_problems(config, Path(workdir))
    sections = {f"models.{k}": v for k, v in raw.get("models", {}).items()}
    for where, section in {**sections, "training": raw.get("training", {})}.items():
        out += _precision_problems(where, section or {})
    out += _same_entries("models", config["models"], ignore=("paper",))
    variants = {k: v for k, v in config["variants"].items() if k not in broken}
    out += placement.problems({**config, "variants": variants}, jobs.run_settings)
    out += _same_entries("variants", _as_run(config, sweep.expand(variants)), ignore=("paper",))
    swept = [
        name
        for name, v in variants.items()
        if isinstance((v or {}).get("sweep"), dict) and len(sweep.points(v["sweep"])) > 1
    ]
    if swept and "validation" not in config.get("splits", ["validation"]):
        out.append(
            f"variants {', '.join(swept)} sweep settings, and the selection is made on the "
            "validation split, which 'splits' leaves out; add validation to splits"
        )
    target = config.get("compare_to")
    if target is not None and target not in config["variants"]:
        out.append(
            f"compare_to: {target!r} is not a variant; valid names: {list(config['variants'])}"
        )
    return out + lm_eval_jobs.problems(config, str(workdir)) + analysis_jobs.problems(config)


def check(
    config: dict[str, Any],
    raw: dict[str, Any] | None = None,
    files: list[str | Path] = (),
    workdir: str | Path = ".",
    schema: str | Path | None = None,
) -> None:
    """Raise ``GridConfigError`` listing every problem of ``config`` and its YAML ``files``.

    With ``schema`` (the path of ``config/schema.yaml``) the config is first validated
    against it and the methods' settings (``steering/pipeline/config_schema.py``), every violation
    listed, and its defaults are then filled in, in place; without, ``config`` is taken as
    valid and filled already."""
    found = [p for f in files for p in repeated_keys(f)]
    parsed = config_schema.load(schema) if schema else None
    if parsed is not None:
        invalid = config_schema.errors(config, parsed)
        if invalid:
            lines = "\n".join(f"  - {p}" for p in [*found, *invalid])
            raise GridConfigError(
                f"the config does not fit its schema ({schema} and the methods' settings), "
                f"{len(found) + len(invalid)} problem(s):\n{lines}"
            )
        config_schema.fill_defaults(config, parsed)
    found += problems(config, raw, workdir, parsed)
    if found:
        lines = "\n".join(f"  - {p}" for p in found)
        raise GridConfigError(f"the config has {len(found)} problem(s):\n{lines}")
