"""A minimal test runner for the core's tests, for MicroPython (and CPython).

Usage (from the repository root):

    micropython -X heapsize=4m tests/mp_runner.py tests/core/test_wire.py [...]

Each file is imported by module name with its directory and the repository
root on sys.path; every callable attribute named ``test_*`` is called with no
arguments. Prints "PASS name" or "FAIL name: Type: message" (plus a
traceback) per test, then "N passed, M failed". Exits with status 1 if any
test failed, a module failed to import, or no test was found at all.

Only what MicroPython has: no os.path, importlib, traceback or inspect there.
"""

import sys


def _dirname(path):
    """The directory part of a path ('' when there is none)."""
    index = path.rfind("/")
    if index < 0:
        return ""
    if index == 0:
        return "/"
    return path[:index]


def _basename(path):
    """The last component of a path."""
    return path[path.rfind("/") + 1:]


def _add_path(directory):
    """Put directory at the front of sys.path once."""
    if directory == "":
        directory = "."
    if directory not in sys.path:
        sys.path.insert(0, directory)


def _print_traceback(exc):
    """The traceback of exc, by whatever means this runtime has."""
    if hasattr(sys, "print_exception"):
        sys.print_exception(exc)
        return
    try:
        import traceback
    except ImportError:
        return
    traceback.print_exception(type(exc), exc, exc.__traceback__)


def _describe(exc):
    """'Type: message', or just 'Type' when the message is empty."""
    message = str(exc)
    if message:
        return "%s: %s" % (type(exc).__name__, message)
    return type(exc).__name__


def run_file(path, counts):
    """Import the test module at path and run its tests; update counts [passed, failed]."""
    if not path.endswith(".py"):
        print("FAIL %s: not a .py file" % path)
        counts[1] += 1
        return
    module_name = _basename(path)[:-3]
    _add_path(_dirname(path))
    try:
        module = __import__(module_name)
    except Exception as exc:
        print("FAIL %s (import): %s" % (module_name, _describe(exc)))
        _print_traceback(exc)
        counts[1] += 1
        return
    # MicroPython's dir() is in hash order: sort so that runs are repeatable.
    names = sorted(name for name in dir(module) if name.startswith("test_"))
    for name in names:
        test = getattr(module, name)
        if not callable(test):
            continue
        label = "%s.%s" % (module_name, name)
        try:
            test()
        except Exception as exc:
            print("FAIL %s: %s" % (label, _describe(exc)))
            _print_traceback(exc)
            counts[1] += 1
        else:
            print("PASS %s" % label)
            counts[0] += 1
        try:
            import gc
            gc.collect()
        except ImportError:
            pass


def main(argv):
    """Run the test files named in argv[1:]; return the exit status."""
    paths = argv[1:]
    if not paths:
        print("usage: mp_runner.py TEST_FILE.py [...]")
        return 2
    # The repository root is the parent of this script's directory.
    _add_path(_dirname(_dirname(argv[0])))
    counts = [0, 0]
    for path in paths:
        run_file(path, counts)
    print("%d passed, %d failed" % (counts[0], counts[1]))
    if counts[1]:
        return 1
    if counts[0] == 0:
        print("no tests found")
        return 1
    return 0


if __name__ == "__main__":
    status = main(sys.argv)
    if status:
        sys.exit(status)
