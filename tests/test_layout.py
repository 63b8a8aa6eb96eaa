"""The layout of ``worker/``, read from its source: no import cycle, no late import, short
functions, each knob's default in one place, and exit codes decided only in ``worker/cli.py``.

Each check is a function of the folder it reads, so it can be pointed at any tree (the tests
below read this one; ``bench``-style runs against an older checkout show that they fail there).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from worker.keys import KEYS

WORKER = Path(__file__).resolve().parents[1] / "worker"
MAX_FUNCTION_LINES = 40
# Knobs a class takes under another name than the key's field.
KNOB_ALIASES = {"capacity": "pacing.retry_budget"}
EXIT_NAMES = re.compile(r"exit", re.IGNORECASE)


def _modules(root: Path) -> Iterator[tuple[str, Path, ast.Module]]:
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path, ast.parse(path.read_text(), str(path))


def _imported(name: str, path: Path, node: ast.Import | ast.ImportFrom) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    base = node.module or ""
    if node.level:
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, base] if base else package)
    return {base, *(f"{base}.{alias.name}" for alias in node.names)}


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of ``root``'s package it imports (at any depth of its body)."""
    modules = {name: (path, tree) for name, path, tree in _modules(root)}
    graph: dict[str, set[str]] = {}
    for name, (path, tree) in modules.items():
        targets: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                targets |= _imported(name, path, node)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(root: Path) -> list[list[str]]:
    """The import cycles (strongly connected components of more than one module)."""
    graph, index, low, stack, found = import_graph(root), {}, {}, [], []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def _functions(root: Path) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    for name, _, tree in _modules(root):
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                yield name, fn


def late_imports(root: Path) -> list[str]:
    """Imports inside a function body, as ``module.function: import ...``."""
    return [f"{name}.{fn.name}: {ast.unparse(node)}" for name, fn in _functions(root)
            for node in ast.walk(fn) if isinstance(node, ast.Import | ast.ImportFrom)]


def long_functions(root: Path) -> list[str]:
    sizes = ((name, fn, (fn.end_lineno or fn.lineno) - fn.lineno + 1)
             for name, fn in _functions(root))
    return [f"{name}.{fn.name}: {lines} lines" for name, fn, lines in sizes
            if lines > MAX_FUNCTION_LINES]


def _literal(node: ast.expr | None) -> bool:
    """A constant other than None (a default written out, not read from the key table)."""
    return isinstance(node, ast.Constant) and node.value is not None


def knob_defaults(root: Path) -> list[str]:
    """Fields and parameters named after a config key that carry a literal default, outside
    the key table (``worker/keys.py``) and the emulator (a program with its own knobs)."""
    knobs = {key.field: key.name for key in KEYS} | KNOB_ALIASES
    out = []
    for name, _, tree in _modules(root):
        if name == "worker.keys" or name.startswith("worker.emulator"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                    and node.target.id in knobs and _literal(node.value):
                out.append(f"{name}:{node.lineno} {node.target.id}")
            if isinstance(node, ast.arguments):
                params = [*node.posonlyargs, *node.args]
                pairs = [*zip(params[len(params) - len(node.defaults):], node.defaults,
                              strict=True),
                         *zip(node.kwonlyargs, node.kw_defaults, strict=True)]
                out += [f"{name}:{arg.lineno} {arg.arg}" for arg, default in pairs
                        if arg.arg in knobs and _literal(default)]
    return out


def _int(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int


def _exit_literal(node: ast.AST) -> bool:
    """An integer exit code written out: assigned to an ``*exit*`` name, passed as one, given
    to ``request_stop``/``exit``/``SystemExit``, or used as a mapping's key."""
    if isinstance(node, ast.Assign | ast.AnnAssign) and _int(node.value):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return any(EXIT_NAMES.search(ast.unparse(t)) for t in targets)
    if isinstance(node, ast.keyword):
        return bool(node.arg and EXIT_NAMES.search(node.arg)) and _int(node.value)
    if isinstance(node, ast.Call):
        called = ast.unparse(node.func).split(".")[-1]
        return called in ("request_stop", "exit", "SystemExit") and any(map(_int, node.args))
    if isinstance(node, ast.Dict):
        return sum(map(_int, node.keys)) >= 2
    return False


def exit_code_literals(root: Path) -> list[str]:
    """Integer exit codes outside ``worker/cli.py``: see ``_exit_literal``, and an integer
    returned by a ``main`` or ``run_*`` function."""
    out = []
    for name, _, tree in _modules(root):
        if name == "worker.cli":
            continue
        for node in ast.walk(tree):
            if _exit_literal(node):
                out.append(f"{name}:{getattr(node, 'lineno', 0)}")
            elif isinstance(node, ast.FunctionDef) and (node.name == "main"
                                                        or node.name.startswith("run_")):
                out += [f"{name}:{r.lineno}" for r in ast.walk(node)
                        if isinstance(r, ast.Return) and _int(r.value)]
    return out


def test_no_import_cycle_and_no_late_import() -> None:
    assert cycles(WORKER) == []
    assert late_imports(WORKER) == []


def test_no_function_is_over_40_lines() -> None:
    assert long_functions(WORKER) == []


def test_each_knob_default_is_declared_once_in_the_key_table() -> None:
    assert knob_defaults(WORKER) == []


def test_exit_codes_are_decided_only_in_the_cli() -> None:
    assert exit_code_literals(WORKER) == []


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    """Each check finds its target in a small package written for it (so a pass is not a
    check that reads nothing)."""
    pkg = tmp_path / "worker"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from worker import b\n")
    (pkg / "b.py").write_text(
        "import worker.a\n\n"
        "def late():\n    import json\n\n"
        "class Pacing:\n    rate: float = 10.0\n\n"
        "def run_job(concurrency: int = 8) -> int:\n"
        "    control.request_stop('deadline', 5)\n    return 6\n\n"
        "EXIT = {0: 'ok', 1: 'failed'}\nexit_code = 2\n"
        "def long():\n" + "    x = 1\n" * 41)
    assert cycles(pkg) == [["worker.a", "worker.b"]]
    assert late_imports(pkg) == ["worker.b.late: import json"]
    assert long_functions(pkg) == ["worker.b.long: 42 lines"]
    assert [f.split()[-1] for f in knob_defaults(pkg)] == ["rate", "concurrency"]
    assert len(exit_code_literals(pkg)) == 4  # request_stop, return 6, the dict, exit_code


def test_importing_the_cli_loads_neither_the_emulator_nor_aiohttp_web() -> None:
    """Only ``demo`` and ``emulator`` need the server side; a scheduled job never pays for it."""
    probe = ("import sys, worker.cli; print(sorted(m for m in sys.modules "
             "if m.startswith(('worker.emulator', 'aiohttp.web'))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
