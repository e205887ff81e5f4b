"""agent/core stays sans-I/O and MicroPython-compatible (see DESIGN.md, STYLE.md).

(a) Static checks of every agent/core/*.py with `ast`: no forbidden imports,
    no imports from the shells, no f-string "=" debug forms, no `match`, no
    `raise ... from`. Imports under `if TYPE_CHECKING:` are type-only and
    allowed (MicroPython never runs them).
(b) Each module really imports under MicroPython (skips when absent).
"""

import ast
from pathlib import Path

import pytest

from test_micropython import require_micropython, run_micropython

REPO_ROOT = Path(__file__).resolve().parent.parent
CORE_DIR = REPO_ROOT / "agent" / "core"
CORE_MODULES = sorted(CORE_DIR.glob("*.py"))
MODULE_IDS = [path.name for path in CORE_MODULES]

# CPython-only, I/O-touching, or run-time typing machinery that MicroPython
# lacks or that the sans-I/O core must not use.
FORBIDDEN_MODULES = frozenset(
    (
        "__future__",
        "abc",
        "asyncio",
        "cryptography",
        "dataclasses",
        "enum",
        "functools",
        "hmac",
        "itertools",
        "logging",
        "os",
        "pathlib",
        "random",
        "socket",
        "threading",
        "time",
        "typing",
        "yaml",
    )
)


def _is_type_checking_guard(node):
    """True for `if TYPE_CHECKING:` (or `if typing.TYPE_CHECKING:`)."""
    test = node.test
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    if isinstance(test, ast.Attribute):
        return test.attr == "TYPE_CHECKING"
    return False


def _imports(tree):
    """(lineno, absolute module name or None for relative, level) of every run-time import."""
    found = []

    def visit(node):
        if isinstance(node, ast.If) and _is_type_checking_guard(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((node.lineno, alias.name, 0))
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, node.module, node.level))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _fstring_debug_forms(source, tree):
    """Line numbers of f-string replacement fields written as {expr=}.

    The AST of f"{x=}" equals that of f"x={x!r}", so look at the source just
    after each formatted expression: a "=" there (not "==") is the debug form.
    """
    lines = source.splitlines()
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FormattedValue):
            continue
        value = node.value
        end_line = getattr(value, "end_lineno", None)
        end_col = getattr(value, "end_col_offset", None)
        if end_line is None or end_col is None:
            continue
        # col offsets are UTF-8 byte offsets.
        rest = lines[end_line - 1].encode("utf-8")[end_col:].decode("utf-8", "replace")
        # The "=" may sit on a following line of a triple-quoted f-string.
        rest = "\n".join([rest] + lines[end_line:end_line + 3]).lstrip()
        if rest.startswith("=") and not rest.startswith("=="):
            found.append(value.lineno)
    return found


def _read(path):
    source = path.read_text(encoding="utf-8")
    return source, ast.parse(source, filename=str(path))


def test_there_are_core_modules():
    assert CORE_MODULES, "no agent/core/*.py found"


@pytest.mark.parametrize("path", CORE_MODULES, ids=MODULE_IDS)
def test_core_module_imports_only_allowed_modules(path):
    source, tree = _read(path)
    problems = []
    for lineno, module, level in _imports(tree):
        if level:
            continue  # relative: inside agent.core (agent/core has no subpackages that escape it)
        top = module.split(".")[0]
        if top in FORBIDDEN_MODULES:
            problems.append("line %d: import of %s (not available or not allowed in the core)" % (lineno, module))
        elif top == "agent" and not (module == "agent.core" or module.startswith("agent.core.")):
            problems.append("line %d: import of %s (the core never imports the shells)" % (lineno, module))
    assert not problems, "%s:\n  %s" % (path.relative_to(REPO_ROOT), "\n  ".join(problems))


@pytest.mark.parametrize("path", CORE_MODULES, ids=MODULE_IDS)
def test_core_module_uses_only_micropython_syntax(path):
    source, tree = _read(path)
    problems = []
    for lineno in _fstring_debug_forms(source, tree):
        problems.append("line %d: f-string debug form {expr=}" % lineno)
    match_type = getattr(ast, "Match", None)
    for node in ast.walk(tree):
        if match_type is not None and isinstance(node, match_type):
            problems.append("line %d: match statement" % node.lineno)
        if isinstance(node, ast.Raise) and node.cause is not None:
            problems.append("line %d: raise ... from" % node.lineno)
    assert not problems, "%s:\n  %s" % (path.relative_to(REPO_ROOT), "\n  ".join(problems))


def test_fstring_debug_detector_works_on_this_python():
    # Guards the check above against AST position changes across versions.
    source = 'a = f"{x=}"\nb = f"{x!r} {y == z} {w:>3}"\nc = f"{ q = !r:>4}"\nd = f"{p==q=}"\ne = f"""\n{m\n=}"""\n'
    assert _fstring_debug_forms(source, ast.parse(source)) == [1, 3, 4, 6]


def test_agent_package_init_has_no_imports():
    # MicroPython imports agent.core from a checkout: agent/__init__.py must
    # not pull in the CPython shell.
    init = REPO_ROOT / "agent" / "__init__.py"
    tree = ast.parse(init.read_text(encoding="utf-8"))
    imports = [node.lineno for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert not imports, "agent/__init__.py has import statements on lines %s" % imports


@pytest.mark.parametrize("path", CORE_MODULES, ids=MODULE_IDS)
def test_core_module_imports_under_micropython(path):
    require_micropython()
    module = "agent.core" if path.stem == "__init__" else "agent.core." + path.stem
    result = run_micropython(["-c", "import %s; print('imported %s')" % (module, module)], timeout=60)
    assert result.returncode == 0 and "imported " + module in result.stdout, (
        "micropython could not import %s (exit %d):\n%s" % (module, result.returncode, result.stdout)
    )
