"""The public face survives any reshuffle of the modules behind it: the package's names, the
version and entry point that pyproject.toml points at, and every script's ``--help``."""

import json
import subprocess
import sys
import tomllib
from importlib import import_module

from tests.workflow import ROOT


def test_the_public_names():
    import steering

    assert set(steering.__all__) == {"SteeringConfig", "SteeredModel", "__version__"}
    from steering import SteeredModel, SteeringConfig

    assert SteeringConfig().rank == 8 and callable(SteeredModel)
    assert steering.__version__ == import_module("steering.runtime.provenance").VERSION


def test_what_pyproject_points_at_exists():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    targets = [project["tool"]["setuptools"]["dynamic"]["version"]["attr"]]
    for group in project["project"].get("entry-points", {}).values():
        targets += [t.replace(":", ".") for t in group.values()]
    for target in targets:
        module, _, name = target.rpartition(".")
        assert hasattr(import_module(module), name), target


# Every script's --help in one interpreter: the exit code and the first line it prints.
HELP = """
import contextlib, io, json, runpy, sys
sys.path.insert(0, {root!r})
out = {{}}
for path in {scripts!r}:
    sys.argv, buf, code = [path, "--help"], io.StringIO(), None
    with contextlib.redirect_stdout(buf):
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as e:
            code = e.code
    out[path] = [code, buf.getvalue().split("\\n", 1)[0]]
print(json.dumps(out))
"""


def test_every_script_answers_help():
    scripts = sorted(str(p) for p in (ROOT / "scripts").glob("*.py"))
    code = HELP.format(root=str(ROOT), scripts=scripts)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(found) == scripts
    bad = {p: r for p, r in found.items() if r[0] not in (0, None) or not r[1].startswith("usage:")}
    assert bad == {}
