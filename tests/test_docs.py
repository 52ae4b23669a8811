"""The documentation stays true: every flag of every script is in docs/cli.md, every config key
(config/schema.yaml plus each method's settings) in config/README.md, and every relative link
of the Markdown pages points at a file that exists and a heading it has."""

import re

import pytest

from steering.pipeline import config_schema
from tests.workflow import ROOT, run_script

SCRIPTS = sorted(p.name for p in (ROOT / "scripts").glob("*.py"))
PAGES = sorted(
    [ROOT / "README.md", ROOT / "config/README.md", ROOT / "benchmarks/README.md"]
    + list((ROOT / "docs").glob("*.md"))
)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def flags_of(name, monkeypatch, capsys) -> set[str]:
    code, _, out = run_script(name, ["--help"], monkeypatch, capsys, ROOT)
    assert code == 0
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", out)) - {"--help"}


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_flag_is_documented(name, monkeypatch, capsys):
    text = (ROOT / "docs" / "cli.md").read_text()
    section = text.split(f"`scripts/{name}`", 1)
    assert len(section) == 2, f"docs/cli.md has no section naming `scripts/{name}`"
    said = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)(?![\w-])", text))
    missing = sorted(flags_of(name, monkeypatch, capsys) - said)
    assert not missing, f"docs/cli.md does not document {name}'s {missing}"


def schema_keys(node) -> set[str]:
    """Every property name anywhere in a JSON Schema."""
    found = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                found |= set(value)
            found |= schema_keys(value)
    elif isinstance(node, list):
        for value in node:
            found |= schema_keys(value)
    return found


def test_every_config_key_is_documented():
    keys = schema_keys(config_schema.load(ROOT / "config" / "schema.yaml"))
    assert {"models", "variants", "sweep", "lora_rank", "precision"} <= keys  # the walk works
    text = (ROOT / "config" / "README.md").read_text()
    missing = sorted(k for k in keys if f"`{k}`" not in text)
    assert not missing, f"config/README.md does not document {missing}"


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", lambda m: "_" if m.group() == "_" else "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return {slug(h) for h in re.findall(r"^#+\s+(.*)$", text, re.MULTILINE)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file, _, anchor = target.partition("#")
        where = (page.parent / file).resolve() if file else page
        if not where.exists():
            broken.append(target)
        elif anchor and where.suffix == ".md" and anchor not in anchors(where):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: broken links {broken}"


def test_slugs_follow_github():
    assert slug("Sweeps and selection") == "sweeps-and-selection"
    assert slug("`make run`: the default run") == "make-run-the-default-run"
    assert slug("Scaling out: Slurm, several GPUs") == "scaling-out-slurm-several-gpus"


def test_the_package_map_names_every_package_and_script():
    """The README's package map has a row for every package of ``steering/`` and names every
    script (the file-by-file table is docs/development.md's)."""
    text = (ROOT / "README.md").read_text()
    table = text.split("## Package map", 1)[1].split("\n## ", 1)[0]
    packages = sorted(p.parent.name for p in (ROOT / "steering").glob("*/__init__.py"))
    missing = [f"steering/{p}/" for p in packages if f"`steering/{p}/`" not in table]
    missing += [f"scripts/{s}" for s in SCRIPTS if f"`scripts/{s}`" not in table]
    assert missing == [], f"README.md's package map lacks {missing}"


def test_every_file_is_in_the_development_guide():
    """docs/development.md's "File by file" has a row for every module, script, test and
    benchmark (a new file gets its row there)."""
    text = (ROOT / "docs" / "development.md").read_text().split("## File by file", 1)[1]
    rows = set(re.findall(r"^\| `([^`]+)`", text, re.MULTILINE))
    files = [
        p.relative_to(ROOT).as_posix()
        for folder in ("steering", "scripts", "tests", "benchmarks")
        for p in (ROOT / folder).rglob("*.py")
        if "__pycache__" not in p.parts
    ]
    missing = sorted(f for f in files if f not in rows and not f.endswith("tests/__init__.py"))
    assert missing == []


MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|home|root|Users|scratch)/[\w.-]+")


def test_docs_and_committed_results_name_no_machine_paths():
    """Pages and recorded results give repository-relative paths (``../shared/...``,
    ``.cache/models/...``), never one machine's directories."""
    files = [*PAGES, *(ROOT / "benchmarks" / "results").glob("*.json")]
    found = {
        str(p.relative_to(ROOT)): hits
        for p in files
        if (hits := sorted(set(MACHINE_PATH.findall(p.read_text()))))
    }
    assert found == {}
