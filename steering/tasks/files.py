"""Task data on disk: local source files in the hub schema, and prepared (carved) splits.

Source files: ``<dir>/<source split>.jsonl`` (or ``.json``, ``.parquet``), one per source
split, columns as on the hub. Prepared data (``scripts/prepare_data.py``): ``train.parquet``,
``validation.parquet``, ``test.parquet`` and ``manifest.json`` with the row count and a
content hash per split, so a truncated or edited file is caught on load.

``steering/tasks/base.py`` (the ``Task``) reads and writes through this module, never the
other way round: a task is used here only for what it says about itself (its name, source
splits, schema and row checks).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from steering.runtime.errors import DataError
from steering.runtime.io import write_json
from steering.runtime.provenance import git_commit, package_version
from steering.runtime.storage import staged_dir, writing

if TYPE_CHECKING:  # datasets is imported where rows are read or made (it costs ~1 s)
    from datasets import Dataset, DatasetDict


class Task(Protocol):
    """What this module reads of a task (``steering.tasks.base.Task`` has it all)."""

    name: str
    protocol_version: int
    source_splits: tuple[str, ...]

    def schema_text(self) -> str: ...

    def validate(self, splits: DatasetDict) -> None: ...


MANIFEST = "manifest.json"
SPLITS = ("train", "validation", "test")
SOURCE_SUFFIXES = (".jsonl", ".json", ".parquet")


def _check_json_bytes(path: Path) -> None:
    """JSON must be UTF-8 and hold rows: pyarrow reads other bytes into string columns without
    a word (the first access to that row then fails far from the file), and an empty file
    fails inside the reader with no message, so both are found here."""
    data = path.read_bytes()
    if not data.strip():
        raise DataError(f"{path} is empty; a source split needs at least one row")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(
            f"{path} line {line}, column {column}: byte 0x{data[e.start]:02x} is not UTF-8; "
            "re-save the file as UTF-8"
        ) from None


def _load(path: Path) -> Dataset:
    from datasets import Dataset

    kind = "parquet" if path.suffix == ".parquet" else "json"
    if kind == "json":
        _check_json_bytes(path)
    try:
        if kind == "json":
            return Dataset.from_json(str(path))
        ds = Dataset.from_parquet(str(path))
        ds.data.table.validate(full=True)  # Parquet strings can hold bad UTF-8 too
        return ds
    except Exception as e:  # pyarrow / json decoding errors of many kinds
        raise DataError(f"cannot read {path} as {kind}: {type(e).__name__}: {e}") from e


def read_source(task: Task, data_dir: str | Path) -> DatasetDict:
    """The task's source splits from ``data_dir/<split>.{jsonl,json,parquet}``."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{task.name}: data directory {data_dir} does not exist")
    out = {}
    for split in task.source_splits:
        found = [
            data_dir / f"{split}{s}"
            for s in SOURCE_SUFFIXES
            if (data_dir / f"{split}{s}").is_file()
        ]
        if not found:
            raise DataError(
                f"{task.name}: {data_dir} has no file for source split '{split}': expected one "
                f"of {[f'{split}{s}' for s in SOURCE_SUFFIXES]} with columns {task.schema_text()}"
            )
        out[split] = _load(found[0])
    from datasets import DatasetDict

    return DatasetDict(out)


def content_hash(ds: Dataset) -> str:
    """sha256 over the rows as canonical JSON: independent of the file format's bytes."""
    h = hashlib.sha256()
    for row in ds:
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()


def is_prepared(data_dir: str | Path) -> bool:
    return (Path(data_dir) / MANIFEST).is_file()


def write_prepared(
    task: Task, splits: DatasetDict, out_dir: str | Path, source: dict[str, Any]
) -> dict:
    """Write the carved splits as Parquet plus the manifest (written last, atomically)."""
    out_dir = Path(out_dir)
    entries = {}
    for split in SPLITS:
        entries[split] = {"rows": len(splits[split]), "sha256": content_hash(splits[split])}
    manifest = {
        "dataset": task.name,
        "protocol_version": task.protocol_version,
        "source": source,
        "splits": entries,
        "package_version": package_version(),
        "git_commit": git_commit(),
    }
    # all files or none: a full disk half-way leaves out_dir as it was
    with staged_dir(out_dir, last=(MANIFEST,)) as stage:
        for split in SPLITS:
            with writing(stage / f"{split}.parquet"):
                splits[split].to_parquet(str(stage / f"{split}.parquet"))
        write_json(stage / MANIFEST, manifest)
    return manifest


def read_prepared(task: Task, data_dir: str | Path) -> DatasetDict:
    """Load prepared splits, checking dataset name, protocol version, row counts and hashes."""
    data_dir = Path(data_dir)
    try:
        manifest = json.loads((data_dir / MANIFEST).read_text(encoding="utf-8"))
        entries = manifest["splits"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise DataError(f"{data_dir / MANIFEST} is not a valid manifest: {e}") from e
    if manifest.get("dataset") != task.name:
        raise DataError(f"{data_dir} holds {manifest.get('dataset')!r} data, not {task.name!r}")
    if manifest.get("protocol_version") != task.protocol_version:
        raise DataError(
            f"{data_dir} was prepared under {task.name} protocol version "
            f"{manifest.get('protocol_version')}; this package uses version "
            f"{task.protocol_version}: prepare the data again"
        )
    out = {}
    for split in SPLITS:
        path = data_dir / f"{split}.parquet"
        if not path.is_file():
            raise DataError(f"{task.name}: prepared split file {path} is missing")
        ds = _load(path)
        expected = entries.get(split, {})
        if len(ds) != expected.get("rows") or content_hash(ds) != expected.get("sha256"):
            raise DataError(
                f"{path} does not match {MANIFEST} ({len(ds)} rows vs {expected.get('rows')}, "
                f"or different content): the file was changed or truncated; prepare it again"
            )
        out[split] = ds
    from datasets import DatasetDict

    out = DatasetDict(out)
    task.validate(out)
    return out
