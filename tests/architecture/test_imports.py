"""The package's layering: no import cycle between kflow's modules (imports inside functions
count), and the core (transforms, path, models, sampling) imports without the training loop,
the CLI, metrics or plotting."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "kflow"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """kflow modules imported anywhere in the file (top level, functions, type-checking blocks)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("kflow")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("kflow"):
                continue
            found.add(mod)
            for a in node.names:  # `from . import x` may import a submodule
                found.add(f"{mod}.{a.name}")
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PKG.rglob("*.py")}
    g = {}
    for name, path in files.items():
        deps = set()
        for d in imports_of(path):  # importing a.b.c runs a/__init__ and a/b/__init__ first
            parts = d.split(".")
            deps |= {".".join(parts[:i]) for i in range(2, len(parts) + 1)}
        g[name] = {d for d in deps if d in files and d != name and not name.startswith(d + ".")}
    return g


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_graph_sees_imports_inside_functions():
    g = graph()
    assert "kflow.path.kflow_path" in g["kflow.path"]  # package __init__ re-exports
    assert any(d.startswith("kflow.") for d in g["kflow.cli.main"])


def test_no_import_cycle():
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_core_imports_without_training_cli_metrics_or_plotting():
    code = (
        "import sys, kflow, kflow.transforms, kflow.path, kflow.models, kflow.sampling\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[:2] in (['kflow', 'training'], ['kflow', 'cli'], "
        "['kflow', 'metrics'], ['kflow', 'viz']) or m.split('.')[0] in ('matplotlib', 'sklearn', 'scipy', 'yaml'))\n"
        "print(','.join(bad))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "", f"the core pulled in: {res.stdout.strip()}"
