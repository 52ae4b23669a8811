"""Start-up stays cheap: every script's ``--help``, the pipeline's config check, ``plan.py``
and ``aggregate.py`` run without importing torch, transformers, datasets or peft (together
~10 s of imports on a 2-core machine, paid by every job before its first useful step)."""

import json
import subprocess
import sys
from pathlib import Path

from tests.test_results import make_runs
from tests.workflow import ROOT

HEAVY = ("torch", "transformers", "datasets", "peft", "accelerate")

# Runs each case in one fresh interpreter and reports the heavy modules loaded after it.
PROBE = """
import json, runpy, sys
sys.path.insert(0, {root!r})
heavy, out = {heavy!r}, {{}}
for name, argv in {cases!r}:
    sys.argv = argv
    try:
        if name == "config check":  # what the Snakefile does before any rule
            import copy, yaml
            from steering.pipeline import grid_config, jobs
            config = yaml.safe_load(open(argv[1]))
            grid_config.check(config, copy.deepcopy(config), files=[argv[1]], schema=argv[2])
            jobs.grid(config)
        else:
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit:
        pass
    out[name] = [m for m in heavy if m in sys.modules]
print(json.dumps(out))
"""


def heavy_imports(cases: list[tuple[str, list[str]]], cwd: Path) -> dict[str, list[str]]:
    code = PROBE.format(root=str(ROOT), heavy=HEAVY, cases=cases)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_help_config_check_plan_and_aggregate_import_no_torch(tmp_path):
    scripts = sorted((ROOT / "scripts").glob("*.py"))
    cases = [(p.name, [str(p), "--help"]) for p in scripts]
    cases.append(
        ("config check", ["-", str(ROOT / "config/paper.yaml"), str(ROOT / "config/schema.yaml")])
    )
    cases.append(
        (
            "plan.py",
            [str(ROOT / "scripts/plan.py"), "--configfile", str(ROOT / "config/paper.yaml")],
        )
    )
    metrics = [str(p) for p in make_runs(tmp_path)]
    cases.append(
        (
            "aggregate.py",
            [
                str(ROOT / "scripts/aggregate.py"),
                "--metrics",
                *metrics,
                "--out-dir",
                str(tmp_path / "tables"),
                "--plots-dir",
                str(tmp_path / "plots"),
            ],
        )
    )
    found = heavy_imports(cases, tmp_path)
    assert set(found) == {name for name, _ in cases}  # every case ran
    assert {name: mods for name, mods in found.items() if mods} == {}
    assert (tmp_path / "tables" / "long.csv").is_file()  # aggregate ran through, not just parsed
