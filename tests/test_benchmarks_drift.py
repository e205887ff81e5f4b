"""docs/BENCHMARKS.md's simulator tables are what `leaderd simulate` gives now (issue 11, item 12).

The simulator is deterministic for a fixed seed (same arguments, same
figures, whatever the machine), so every figure of a table row but wall_s
must be exactly what the row's command prints now: the table prints the
JSON value as it comes. A change to the core that moves a figure fails
here until the tables are re-run (`python bench/simulate_figures.py`) and
their commits updated.

Rows re-run: every N <= 100 row of the steady, crash-random and
partition-heal tables, and the N <= 20 rows of the other tables (their
N = 100 rows, ~10 s each, and the 10-minute loss runs, ~30 s each, are
left to the bench). The N <= 20 rows take ~12 s of CPU, run on two
processes; the N = 100 rows, ~25 s of CPU more, are a second test marked
slow (`-m "not slow"` leaves it out of a quick run; the full suite and CI
run it).
"""

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "BENCHMARKS.md")
# Tables whose every row up to N = 100 is re-run (headings start so).
FULL_TABLES = ("Steady state", "Crash of a random node", "Partition into halves")
FULL_MAX_N = 100
# Other tables: rows up to this N, without --duration 10m.
OTHER_MAX_N = 20
COMMIT = re.compile(r"\bcommit `?([0-9a-f]{7,40})`?", re.I)


def simulator_tables(text):
    """[(heading, commit line or None, columns, [(args, cells)])] for every `leaderd simulate` table."""
    tables = []
    heading = columns = None
    prose = []
    for line in text.splitlines():
        if line.startswith("#"):
            heading, columns, prose = line.lstrip("# ").strip(), None, []
        elif line.startswith("| command |"):
            columns = [c.strip() for c in line.strip().strip("|").split("|")]
            tables.append((heading, " ".join(prose), columns, []))
        elif line.startswith("| `leaderd simulate ") and columns:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            assert len(cells) == len(columns), line
            command = cells[0].strip("`").split()
            assert command[:2] == ["leaderd", "simulate"] and "--json" in command, line
            tables[-1][3].append((command[2:], dict(zip(columns, cells))))
        elif not line.startswith("|"):
            prose.append(line)
    return tables


def _nodes(args):
    return int(args[args.index("--nodes") + 1])


def rows_to_check(tables):
    out = []
    for heading, _, _, rows in tables:
        full = heading.startswith(FULL_TABLES)
        for args, cells in rows:
            n = _nodes(args)
            if (full and n <= FULL_MAX_N) or (n <= OTHER_MAX_N and "10m" not in args):
                out.append((heading, args, cells))
    return out


def shown(result, column):
    """How bench/simulate_figures.py prints a result's column: the JSON value, "-" for null."""
    value = result.get(column)
    if value is None and isinstance(result.get("extras"), dict):
        value = result["extras"].get(column)
    return "-" if value is None else str(value)


def simulate(args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    out = subprocess.run([sys.executable, "-m", "agent.cli", "simulate"] + args, capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, (args, out.stderr)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def tables():
    with open(DOC, encoding="utf-8") as handle:
        return simulator_tables(handle.read())


def test_every_simulator_table_says_its_commit(tables):
    assert len(tables) >= 7
    for heading, prose, _, rows in tables:
        assert rows, heading
        assert COMMIT.search(prose), "%r: no commit beside the table" % heading


def test_the_tables_the_issue_names_are_checked_up_to_n_100(tables):
    checked = rows_to_check(tables)
    for name in FULL_TABLES:
        sizes = {_nodes(args) for heading, args, _ in checked if heading.startswith(name)}
        assert sizes, name
        if name != "Partition into halves":
            assert max(sizes) == FULL_MAX_N, (name, sizes)


def drift(checked):
    """What differs between the doc's rows and the simulator now, one line per figure."""
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(simulate, [args for _, args, _ in checked]))
    out = []
    for (heading, args, cells), result in zip(checked, results):
        for column, cell in cells.items():
            if column in ("command", "wall_s"):
                continue
            now = shown(result, column)
            if now != cell:
                out.append("%s: `leaderd simulate %s`: %s is %s in the doc, %s now"
                           % (heading, " ".join(args), column, cell, now))
    return out


HOW = "docs/BENCHMARKS.md drifted from the simulator (re-run python bench/simulate_figures.py " \
      "and update the tables and their commits):\n"


def test_rows_up_to_n_20_match_the_simulator_now(tables):
    """Seconds: every row of N <= 20 (none of the 10-minute runs)."""
    rows = [row for row in rows_to_check(tables) if _nodes(row[1]) <= OTHER_MAX_N]
    assert len(rows) >= 15, rows
    found = drift(rows)
    assert not found, HOW + "\n".join(found)


@pytest.mark.slow
def test_n_100_rows_match_the_simulator_now(tables):
    """The N = 100 rows of the steady and crash-random tables: ~25 s of CPU."""
    rows = [row for row in rows_to_check(tables) if _nodes(row[1]) > OTHER_MAX_N]
    assert len(rows) >= 3, rows
    found = drift(rows)
    assert not found, HOW + "\n".join(found)


def test_a_changed_figure_is_caught(tables):
    """The comparison itself: one figure of the doc, changed, is reported."""
    heading, args, cells = [row for row in rows_to_check(tables) if _nodes(row[1]) == 10][0]
    column = [c for c in cells if c not in ("command", "nodes", "profile", "wall_s")][0]
    changed = dict(cells, **{column: cells[column] + "1"})
    found = drift([(heading, args, changed)])
    assert len(found) == 1 and column in found[0], found
