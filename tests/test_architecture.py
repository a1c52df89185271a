"""The library's shape: layers that only import downwards, and one definition of the study's
vocabulary (dlrc_lib.study.schema)."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "dlrc_lib"

# Words whose presence in a module-level literal collection means the module defines part of
# the study's vocabulary itself: cohort names, categorical levels, sequences.
VOCABULARY = {"train", "internal", "external", "Training", "Internal validation", "External validation",
              "1-2", "3-4", ">=5", "IB1", "IB2", "IIA1", "SCC", "ASC", "CET1", "T2FS",
              "reader1", "reader2", "mask_r2_", "mask_rep_"}


def _literal_strings(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _defines_vocabulary(node: ast.Dict) -> bool:
    """A dict defines vocabulary when it maps names to labels or to an order (str or int values),
    or has vocabulary among its values; a dict of data keyed by levels does not."""
    values = node.values
    if _literal_strings(ast.Tuple(elts=values, ctx=ast.Load())) & VOCABULARY:
        return True
    return bool(values) and all(isinstance(v, ast.Constant) and isinstance(v.value, (str, int)) for v in values)


def _vocabulary_definitions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, (ast.Tuple, ast.List, ast.Dict, ast.Set)):
            words = _literal_strings(node.value) & VOCABULARY
            if isinstance(node.value, ast.Dict) and not _defines_vocabulary(node.value):
                words = set()  # data keyed by levels (e.g. a generator's knobs per FIGO stage)
            if len(words) >= 2:
                target = node.targets[0] if isinstance(node, ast.Assign) else node.target
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(target)} ({', '.join(sorted(words))})")
        if isinstance(node, ast.FunctionDef) and "parity" in node.name and path.name != "schema.py":
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} def {node.name} (parity grouping)")
    return found


def test_the_study_vocabulary_is_defined_once():
    offenders = []
    for path in sorted(LIB.rglob("*.py")):
        if path == LIB / "study" / "schema.py":
            continue
        offenders += _vocabulary_definitions(path)
    assert not offenders, "define these in dlrc_lib/study/schema.py and import them:\n" + "\n".join(offenders)


def test_the_vocabulary_check_finds_a_copy(tmp_path):
    mod = tmp_path / "copy.py"
    mod.write_text('COHORTS = ("train", "internal", "external")\ndef parity_bucket(x):\n    return x\n'
                   'ORDER = {"train": 0, "internal": 1}\nLABELS = {"a": "Training", "b": "External validation"}\n'
                   'KNOBS = {"IB1": (8.0, 20.0), "IB2": (20.5, 40.0)}\n')
    bad = _vocabulary_definitions_at(mod)
    assert [b.split()[1] for b in bad] == ["COHORTS", "def", "ORDER", "LABELS"], bad


def _vocabulary_definitions_at(path: Path) -> list[str]:
    global ROOT
    old, ROOT = ROOT, path.parent
    try:
        return _vocabulary_definitions(path)
    finally:
        ROOT = old


def test_layers_only_import_downwards():
    """import-linter's layers contract (pyproject.toml [tool.importlinter])."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "import-linter is a dev requirement (requirements-dev.txt)"
    proc = subprocess.run([exe, str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_no_module_of_the_package_is_imported_conditionally():
    """A broken import of the package's own modules must fail, not fall back silently."""
    offenders = []
    for path in sorted(list(LIB.rglob("*.py")) + list((ROOT / "tests").glob("*.py"))):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and any(
                    isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                    for h in node.handlers):
                mods = [n.module or "" for n in ast.walk(ast.Module(body=node.body, type_ignores=[]))
                        if isinstance(n, ast.ImportFrom)]
                mods += [a.name for n in ast.walk(ast.Module(body=node.body, type_ignores=[]))
                         if isinstance(n, ast.Import) for a in n.names]
                if any(m.startswith("dlrc_lib") for m in mods):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "importorskip" and node.args
                    and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("dlrc_lib")):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} importorskip")
    assert not offenders, offenders


# ------------------------------------------------------------------ import circles
def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, root: Path, modules: set[str]) -> list[tuple[str, int, bool]]:
    """``(imported module, line, inside a function)`` for every import of the package's own
    modules in ``path``, at any depth (relative imports resolved; ``from pkg import sub`` is the
    submodule when there is one)."""
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inside: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside |= {id(n) for n in ast.walk(fn) if n is not fn}
    found = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.append((t, node.lineno, id(node) in inside))
    return found


def _import_graph(root: Path, package: str) -> dict[str, dict[str, tuple[int, bool]]]:
    paths = sorted((root / package).rglob("*.py"))
    modules = {_module_name(p, root) for p in paths}
    return {_module_name(p, root): {t: (line, fn) for t, line, fn in _imports(p, root, modules)} for p in paths}


def _circles(graph: dict[str, dict]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_among_the_package_modules():
    """Imports inside functions count: a circle held together by one is still a circle."""
    circles = _circles(_import_graph(ROOT, "dlrc_lib"))
    assert not circles, "modules importing each other (directly or round a loop):\n" + "\n".join(
        " <-> ".join(c) for c in circles)


def test_the_circle_check_finds_a_circle_through_a_function_level_import(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("from . import c\n")
    (pkg / "sub" / "c.py").write_text("def f():\n    from ..a import x\n")
    (pkg / "d.py").write_text("import pkg.a\n")
    assert _circles(_import_graph(tmp_path, "pkg")) == [["pkg.a", "pkg.sub.b", "pkg.sub.c"]]


def test_function_level_imports_of_the_package_only_defer_a_heavy_dependency():
    """An import of the package's own modules inside a function is there only to keep torch,
    Dask, SimpleITK (...) out of a light import, and says so in a comment ("deferred: ...")
    on its line or the line above."""
    graph_root = ROOT
    paths = sorted(LIB.rglob("*.py"))
    modules = {_module_name(p, graph_root) for p in paths}
    offenders = []
    for path in paths:
        lines = path.read_text(encoding="utf-8").splitlines()
        for target, line, in_function in _imports(path, graph_root, modules):
            if not in_function:
                continue
            near = " ".join(lines[max(0, line - 2):line + 1])
            if "deferred" not in near:
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not offenders, "import these at the top of the module (or say what heavy import is deferred):\n" + \
        "\n".join(offenders)
