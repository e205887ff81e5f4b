"""agent/exitcodes.py: the one exit-code table of every `leaderd` command."""

import ast
from pathlib import Path

from agent import exitcodes


def test_the_documented_exit_codes():
    # docs/OPERATIONS.md section 8; systemd/leaderd.service relies on 2.
    assert (exitcodes.EXIT_OK, exitcodes.EXIT_FAILURE, exitcodes.EXIT_USAGE, exitcodes.EXIT_INTERRUPTED) == (0, 1, 2, 130)
    assert (exitcodes.EXIT_NOT_LEADER, exitcodes.EXIT_UNREACHABLE) == (1, 2)


def test_one_exit_code_table():
    # The shells import the table; none assigns an EXIT_ name of its own.
    agent_dir = Path(__file__).resolve().parent.parent / "agent"
    own = []
    for path in sorted(agent_dir.rglob("*.py")):
        if path.name == "exitcodes.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            for target in targets:
                if isinstance(target, ast.Name) and target.id.startswith("EXIT_"):
                    own.append("%s:%d %s" % (path.relative_to(agent_dir), node.lineno, target.id))
    assert not own, own
