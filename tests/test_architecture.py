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
