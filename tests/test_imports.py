"""The package's modules import each other one way: no circle, lazy imports and the packages'
``__init__`` re-exports included (only imports under ``if TYPE_CHECKING:`` are not edges, and
the package has none)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "steering"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Modules of the package that ``path`` imports anywhere (functions too), except under
    ``if TYPE_CHECKING:``; ``from pkg import sub`` counts as importing ``pkg.sub``."""
    found: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node):
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                self.generic_visit(node)

        def visit_Import(self, node):
            found.update(a.name for a in node.names)

        def visit_ImportFrom(self, node):
            subs = [f"{node.module}.{a.name}" for a in node.names]
            found.update(s for s in subs if s in modules)
            if not any(s in modules for s in subs):
                found.add(node.module)

    Visitor().visit(ast.parse(path.read_text()))
    return {m for m in found if m in modules}


def test_no_module_imports_one_that_imports_it_back():
    modules = _modules()
    graph = {m: _imports(p, modules) - {m} for m, p in modules.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                raise AssertionError(f"import circle: {' -> '.join([*path, dep])}")
            if dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_no_type_only_import_of_the_package():
    """An import of our own module under ``if TYPE_CHECKING:`` would hide an edge of the graph
    above; the package needs none (outside modules such as torch are fine there)."""
    hidden = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
                names = [
                    n.module if isinstance(n, ast.ImportFrom) else a.name
                    for n in ast.walk(node)
                    if isinstance(n, ast.Import | ast.ImportFrom)
                    for a in n.names
                ]
                hidden += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "steering"]
    assert hidden == []


# The floors, lowest first: a module may import its own package and the floors below it,
# never a package beside it or above. "" is the modules directly under steering/ (the method
# a user imports); ``steering/__init__`` (the public API, lazy) stands above them all.
# docs/development.md draws the same floors ("What may import what").
FLOORS = [
    ("runtime",),
    ("", "tasks"),
    ("loading",),
    ("methods",),
    ("evaluation",),
    ("training",),
    ("pipeline",),
    ("analysis", "lm_eval"),
]
TOP_LEVEL_AT_MOST = 8


def _package(module: str) -> str:
    parts = module.split(".")
    return "" if len(parts) == 2 and (PACKAGE / f"{parts[1]}.py").is_file() else parts[1]


def test_every_package_has_a_floor_and_few_modules_stand_at_the_top():
    floor = {p for f in FLOORS for p in f}
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert packages | {""} == floor, "a new package needs its place in FLOORS and the docs"
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert len(top) <= TOP_LEVEL_AT_MOST, top


def test_imports_only_go_down_the_floors():
    modules = _modules()
    floor = {p: i for i, f in enumerate(FLOORS) for p in f}
    upward = []
    for module, path in sorted(modules.items()):
        if module == "steering":
            continue
        here = _package(module)
        for dep in sorted(_imports(path, modules) - {module}):
            there = _package(dep) if dep != "steering" else "the public API"
            if there != here and not floor.get(there, len(FLOORS)) < floor[here]:
                upward.append(f"{module} -> {dep}")
    assert upward == [], "imports that do not go down a floor: " + "; ".join(upward)


def test_the_development_guide_draws_these_floors():
    text = (PACKAGE.parent / "docs" / "development.md").read_text()
    block = text.split("<!-- floors -->")[1]
    drawn = []
    for line in block.strip("`\n").splitlines():
        if line[:1].isdigit():
            names = [w for w in line.split()[1:] if w.endswith("/") or w == "steering/*.py"]
            drawn.append(tuple(sorted("" if n == "steering/*.py" else n[:-1] for n in names)))
    assert drawn == [tuple(sorted(f)) for f in reversed(FLOORS)]
