"""agent/core stays sans-I/O and MicroPython-compatible (see DESIGN.md, STYLE.md).

(a) Static checks of every agent/core/*.py with `ast` (and `symtable` for scopes):
    - imports come from an ALLOW-list: other agent/core modules, and the few
      stdlib modules (names) listed in ALLOWED_IMPORTS, each with its reason;
      anything else (os, io, time, select, socket, random, logging, ...) fails.
      Imports under `if TYPE_CHECKING:` (with `TYPE_CHECKING = False` in the
      module) are type-only and allowed: MicroPython never runs them.
    - no ambient effects: every name a module uses without binding it must be
      a builtin from ALLOWED_BUILTINS (pure functions, types, exceptions), so
      open(), print(), input(), __import__, exec/eval, globals() and any
      builtin not listed fail; no `global` statement (module state would be
      shared by every node the simulator runs in one process).
    - only MicroPython syntax: no f-string "=" debug forms, no `match`, no
      `raise ... from`.
    The detectors themselves are tested on snippets (known bad, known good).
(b) Each module really imports under MicroPython (skips when absent).
"""

import ast
import builtins
import symtable
from pathlib import Path

import pytest

from test_micropython import require_micropython, run_micropython

REPO_ROOT = Path(__file__).resolve().parent.parent
CORE_DIR = REPO_ROOT / "agent" / "core"
CORE_MODULES = sorted(CORE_DIR.glob("*.py"))
MODULE_IDS = [path.name for path in CORE_MODULES]
CORE_NAMES = frozenset(path.stem for path in CORE_MODULES if path.stem != "__init__")

# The only modules outside agent/core that the core may import: module ->
# the names `from module import ...` may take (None: any; the module itself
# may then also be imported whole). Each is on MicroPython and touches no
# clock, randomness, file, socket or environment. Add one only with its reason.
ALLOWED_IMPORTS = {
    "hashlib": None,  # SHA-256: the HMAC and key ids (auth.py), the cluster tag (wire.py)
    "struct": None,  # the wire format's fixed-size fields (auth.py, wire.py)
    "math": None,  # log, log10, floor of the suspicion timeout formula (suspicion.py)
    "binascii": None,  # base64 of keys and keyrings in the config rules (rules.py)
    "micropython": ("const",),  # `from micropython import const`, with a CPython fallback
}

# Builtins the core may use: pure functions, types and exceptions. Not here,
# and so refused: I/O (open, print, input, help, breakpoint), loading or
# running code (__import__, exec, eval, compile), leaving the process (exit,
# quit), reaching into scopes (globals, locals, vars, dir), and values that
# differ from run to run (id: an address; hash: salted for str and bytes).
ALLOWED_BUILTINS = frozenset((
    "abs", "all", "any", "bool", "bytearray", "bytes", "callable", "chr", "classmethod", "dict",
    "divmod", "enumerate", "filter", "float", "frozenset", "getattr", "hasattr", "int", "isinstance",
    "issubclass", "iter", "len", "list", "map", "max", "memoryview", "min", "next", "object",
    "ord", "pow", "property", "range", "repr", "reversed", "round", "set", "setattr", "slice",
    "sorted", "staticmethod", "str", "sum", "super", "tuple", "type", "zip",
    "NotImplemented", "Ellipsis",
    "ArithmeticError", "AssertionError", "AttributeError", "Exception", "ImportError",
    "IndexError", "KeyError", "LookupError", "MemoryError", "NotImplementedError", "OverflowError",
    "RuntimeError", "StopIteration", "TypeError", "UnicodeError", "ValueError",
    "ZeroDivisionError",
))

# The refused builtins that a reader is most likely to reach for, with why.
FORBIDDEN_BUILTINS = {
    "open": "file I/O", "print": "writes to stdout", "input": "reads stdin", "help": "I/O",
    "breakpoint": "the debugger", "__import__": "imports around the allow-list",
    "exec": "runs code from a string", "eval": "runs code from a string",
    "compile": "compiles code from a string", "exit": "ends the process", "quit": "ends the process",
    "globals": "module state", "locals": "scope introspection", "vars": "scope introspection",
    "dir": "introspection", "id": "an address: differs from run to run",
    "hash": "salted for str/bytes: differs from run to run", "__builtins__": "every builtin",
}


# --- imports ----------------------------------------------------------------

def _type_checking_is_false(tree):
    """Whether the module binds TYPE_CHECKING, and only ever as `TYPE_CHECKING = False`."""
    values = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.NamedExpr)):
            targets = [node.target]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((alias.asname or alias.name) == "TYPE_CHECKING" for alias in node.names):
                return False
            continue
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id == "TYPE_CHECKING":
                values.append(node.value)
    return bool(values) and all(isinstance(v, ast.Constant) and v.value is False for v in values)


def _imports(tree):
    """Every run-time import statement (ast.Import / ast.ImportFrom) of the module.

    The body of `if TYPE_CHECKING:` is left out when the module sets
    TYPE_CHECKING = False (type-only imports that no runtime executes).
    """
    guard_is_false = _type_checking_is_false(tree)
    found = []

    def visit(node):
        if (guard_is_false and isinstance(node, ast.If) and isinstance(node.test, ast.Name)
                and node.test.id == "TYPE_CHECKING"):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _core_module(dotted, core_names):
    """Whether dotted ("agent.core" or "agent.core.NAME") names agent/core or one of its modules."""
    parts = dotted.split(".")
    return parts[:2] == ["agent", "core"] and (len(parts) == 2 or (len(parts) == 3 and parts[2] in core_names))


def import_problems(tree, core_names=CORE_NAMES):
    """One message per import that is not on the allow-list."""
    problems = []

    def bad(node, what, why):
        problems.append("line %d: %s (%s)" % (node.lineno, what, why))

    for node in _imports(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name
                if name.split(".")[0] == "agent":
                    if not _core_module(name, core_names):
                        bad(node, "import %s" % name, "the core imports only agent/core modules, never the shells")
                elif name not in ALLOWED_IMPORTS:
                    bad(node, "import %s" % name, "not on the core's allow-list, ALLOWED_IMPORTS")
                elif ALLOWED_IMPORTS[name] is not None:
                    bad(node, "import %s" % name, "only `from %s import %s`" % (name, ", ".join(ALLOWED_IMPORTS[name])))
            continue
        names = [alias.name for alias in node.names]
        what = "from %s%s import %s" % ("." * node.level, node.module or "", ", ".join(names))
        if "*" in names:
            bad(node, what, "star import")
            continue
        if node.level > 1:
            bad(node, what, "reaches outside agent/core")
            continue
        if node.level == 1:
            module = "agent.core" + ("." + node.module if node.module else "")
        else:
            module = node.module
        if module.split(".")[0] == "agent":
            if not _core_module(module, core_names):
                bad(node, what, "the core imports only agent/core modules, never the shells")
            elif module == "agent.core" and not all(name in core_names for name in names):
                bad(node, what, "agent.core has no such module")
            continue
        if module not in ALLOWED_IMPORTS:
            bad(node, what, "not on the core's allow-list, ALLOWED_IMPORTS")
            continue
        allowed_names = ALLOWED_IMPORTS[module]
        if allowed_names is not None and not all(name in allowed_names for name in names):
            bad(node, what, "only %s may come from %s" % (", ".join(allowed_names), module))
    return problems


# --- ambient effects ------------------------------------------------------

def _builtins_used(source, filename="<core module>"):
    """The set of names the module reads without binding them (so builtins, or undefined names).

    By the compiler's own scopes (symtable): a method named `open` does not
    hide a call of the builtin open() in another function.
    """
    top = symtable.symtable(source, filename, "exec")
    module_bound = set(s.get_name() for s in top.get_symbols() if s.is_local())
    used = set()

    def visit(table, is_module):
        for symbol in table.get_symbols():
            if not symbol.is_referenced():
                continue
            name = symbol.get_name()
            if is_module:
                free = not symbol.is_local()
            else:
                free = symbol.is_global() and not symbol.is_declared_global() and name not in module_bound
            if free:
                used.add(name)
        for child in table.get_children():
            visit(child, False)

    visit(top, True)
    return used


def _lines_of(tree, name):
    return sorted(set(node.lineno for node in ast.walk(tree) if isinstance(node, ast.Name) and node.id == name))


def ambient_problems(source, tree, filename="<core module>"):
    """One message per builtin outside ALLOWED_BUILTINS, and per `global` statement."""
    problems = []
    for name in sorted(_builtins_used(source, filename)):
        if name in ALLOWED_BUILTINS:
            continue
        if name in FORBIDDEN_BUILTINS:
            why = FORBIDDEN_BUILTINS[name]
        elif hasattr(builtins, name):
            why = "a builtin not on the core's allow-list, ALLOWED_BUILTINS"
        else:
            why = "never bound in this module: a module it did not import?"
        problems.append("line %s: %s (%s)" % (", ".join(str(n) for n in _lines_of(tree, name)) or "?", name, why))
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            problems.append("line %d: global %s (module state: every node in one process would share it)"
                            % (node.lineno, ", ".join(node.names)))
    return problems


# --- MicroPython syntax ---------------------------------------------------

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


def syntax_problems(source, tree):
    """One message per f-string debug form, `match` statement and `raise ... from`."""
    problems = []
    for lineno in _fstring_debug_forms(source, tree):
        problems.append("line %d: f-string debug form {expr=}" % lineno)
    match_type = getattr(ast, "Match", None)
    for node in ast.walk(tree):
        if match_type is not None and isinstance(node, match_type):
            problems.append("line %d: match statement" % node.lineno)
        if isinstance(node, ast.Raise) and node.cause is not None:
            problems.append("line %d: raise ... from" % node.lineno)
    return problems


def _read(path):
    source = path.read_text(encoding="utf-8")
    return source, ast.parse(source, filename=str(path))


def _report(path, problems):
    return "%s:\n  %s" % (path.relative_to(REPO_ROOT), "\n  ".join(problems))


# --- the checks on agent/core ---------------------------------------------

def test_there_are_core_modules():
    assert CORE_MODULES, "no agent/core/*.py found"


@pytest.mark.parametrize("path", CORE_MODULES, ids=MODULE_IDS)
def test_core_module_imports_only_allowed_modules(path):
    tree = _read(path)[1]
    problems = import_problems(tree)
    assert not problems, _report(path, problems)


@pytest.mark.parametrize("path", CORE_MODULES, ids=MODULE_IDS)
def test_core_module_has_no_io_or_ambient_effects(path):
    source, tree = _read(path)
    problems = ambient_problems(source, tree, str(path))
    assert not problems, _report(path, problems)


@pytest.mark.parametrize("path", CORE_MODULES, ids=MODULE_IDS)
def test_core_module_uses_only_micropython_syntax(path):
    source, tree = _read(path)
    problems = syntax_problems(source, tree)
    assert not problems, _report(path, problems)


def test_agent_package_init_has_no_imports():
    # MicroPython imports agent.core from a checkout: agent/__init__.py must
    # not pull in the CPython shell.
    init = REPO_ROOT / "agent" / "__init__.py"
    tree = ast.parse(init.read_text(encoding="utf-8"))
    imports = [node.lineno for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert not imports, "agent/__init__.py has import statements on lines %s" % imports


# --- the detectors, on snippets (guards against a check that passes everything)

def _import_verdicts(snippet):
    return import_problems(ast.parse(snippet), core_names=frozenset(("wire", "auth", "events")))


def _ambient_verdicts(snippet):
    return ambient_problems(snippet, ast.parse(snippet))


ALLOWED_IMPORT_SNIPPETS = (
    "import hashlib",
    "import struct, math",
    "from struct import pack, unpack_from",
    "from agent.core import events, wire",
    "from agent.core.auth import TAG_BYTES",
    "import agent.core.wire",
    "from . import wire",
    "from .auth import Keyring",
    "try:\n    from micropython import const\nexcept ImportError:\n    def const(v):\n        return v\n",
    "TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from typing import List\n",
)

REFUSED_IMPORT_SNIPPETS = (
    "import os", "import io", "import sys", "import time", "import select", "import socket",
    "import asyncio", "import logging", "import random", "import threading", "import json",
    "import os.path", "from os import urandom", "from time import monotonic as clock",
    "import importlib", "import typing", "import dataclasses", "import hmac",
    "import micropython", "from micropython import mem_info", "from hashlib import *",
    "def f():\n    import io\n    return io",
    "try:\n    import utime as time\nexcept ImportError:\n    import time\n",
    "import agent", "import agent.config", "from agent import client", "from agent.sim import network",
    "from agent.core import nosuchmodule", "from .. import config", "from ..config import load",
    # A guard that is not false at run time exempts nothing.
    "TYPE_CHECKING = True\nif TYPE_CHECKING:\n    import os\n",
    "if TYPE_CHECKING:\n    import os\n",
)

ALLOWED_AMBIENT_SNIPPETS = (
    "def f(data):\n    return sorted(set(data)), len(data), isinstance(data, bytes)\n",
    "class Codec:\n    def open(self, data):\n        return self.decode(data)\n",
    "def f(print):\n    return print\n",
    "def g(x):\n    raise ValueError(x)\n",
    "X = [min(i, 3) for i in range(5)]\n",
)

REFUSED_AMBIENT_SNIPPETS = (
    "open('/etc/leaderd/key')",
    "print('hello')",
    "def f(data):\n    print(data)\n",
    "x = input()",
    "m = __import__('os')",
    "exec('x = 1')",
    "eval('1 + 1')",
    "code = compile('1', 'f', 'eval')",
    "breakpoint()",
    "exit(1)",
    "g = globals()",
    "def f(x):\n    return hash(x)\n",
    "def f(x):\n    return id(x)\n",
    "b = __builtins__",
    "p = __file__",
    "def f():\n    return sys.stdout\n",
    "write = print",
    # A method named open hides nothing in another scope.
    "class Codec:\n    def open(self, data):\n        return data\n    def read(self, path):\n        return open(path)\n",
    "COUNT = 0\ndef bump():\n    global COUNT\n    COUNT += 1\n",
)


@pytest.mark.parametrize("snippet", ALLOWED_IMPORT_SNIPPETS)
def test_import_check_allows(snippet):
    assert _import_verdicts(snippet) == []


@pytest.mark.parametrize("snippet", REFUSED_IMPORT_SNIPPETS)
def test_import_check_refuses(snippet):
    assert _import_verdicts(snippet), "not refused:\n" + snippet


@pytest.mark.parametrize("snippet", ALLOWED_AMBIENT_SNIPPETS)
def test_ambient_check_allows(snippet):
    assert _ambient_verdicts(snippet) == []


@pytest.mark.parametrize("snippet", REFUSED_AMBIENT_SNIPPETS)
def test_ambient_check_refuses(snippet):
    assert _ambient_verdicts(snippet), "not refused:\n" + snippet


def test_forbidden_builtins_are_builtins_and_not_allowed():
    assert not set(FORBIDDEN_BUILTINS) & ALLOWED_BUILTINS
    for name in FORBIDDEN_BUILTINS:
        assert name == "__builtins__" or hasattr(builtins, name), name
    for name in ALLOWED_BUILTINS:
        assert hasattr(builtins, name), name


def test_ambient_check_names_the_line_and_the_reason():
    problems = _ambient_verdicts("import struct\n\n\ndef f(x):\n    print(x)\n")
    assert problems == ["line 5: print (writes to stdout)"]


def test_fstring_debug_detector_works_on_this_python():
    # Guards the check above against AST position changes across versions.
    source = 'a = f"{x=}"\nb = f"{x!r} {y == z} {w:>3}"\nc = f"{ q = !r:>4}"\nd = f"{p==q=}"\ne = f"""\n{m\n=}"""\n'
    assert _fstring_debug_forms(source, ast.parse(source)) == [1, 3, 4, 6]


# --- (b) under the real MicroPython -----------------------------------------

@pytest.mark.parametrize("path", CORE_MODULES, ids=MODULE_IDS)
def test_core_module_imports_under_micropython(path):
    require_micropython()
    module = "agent.core" if path.stem == "__init__" else "agent.core." + path.stem
    result = run_micropython(["-c", "import %s; print('imported %s')" % (module, module)], timeout=60)
    assert result.returncode == 0 and "imported " + module in result.stdout, (
        "micropython could not import %s (exit %d):\n%s" % (module, result.returncode, result.stdout)
    )
