"""Heap figures for the board agent: peak heap at N members, and the smallest heap that holds 32.

    python bench/board_heap.py [--members 8,32,64] [--bisect 32] [--runtime frozen|mpy|source]

For each N, one board (micropython/main.py on the unix port, started the way
tests/test_board_harness.py says: frozen interpreter at 128k when built,
else the mpy-cross build, else the sources) joins N - 1 live members
simulated in this process (bench/board_members.py: agent.core Nodes on real
127.0.0.1 UDP sockets; three of them sign claims, the board verifies) and
goes through: join -> follow the leader (one Ed25519 check) -> the leader
crashes (suspicion, death, a new claim checked) -> it comes back and takes
over again (preempt; another check). The board prints {"heap": ...} every
250 ms: bytes in use right after gc.collect(); "peak" is the largest sample
(it includes a signature check's temporaries when a sample falls during
one), "median" the steady state.

--bisect N then looks for the smallest -X heapsize (8 KB steps) at which
the same scenario passes --trials times in a row with no out-of-memory
error: the heap the board needs, fragmentation included.

Prints one line per run and a JSON summary at the end. Never pass/fail.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from board_members import BoardProcess, SimCluster, board_runtime, format_heapsize, parse_heapsize  # noqa: E402

from agent.localcluster import free_udp_port  # noqa: E402  (board_members put the repository on sys.path)

STEP_TIMEOUT_S = 40


def run_scenario(n, runtime, heapsize, seed=1):
    """One run with n members (the board included); a dict of figures, "ok" False on any failure."""
    cluster = SimCluster(n - 1, seed=seed).start_thread()
    workdir = tempfile.mkdtemp(prefix="leaderd-heap-")
    cfg = cluster.board_config("board-heap", free_udp_port(), heap_interval="250ms")
    board = BoardProcess(runtime, cfg, workdir, heapsize=heapsize).start()
    result = {"members": n, "heapsize": heapsize, "runtime": runtime.kind, "ok": False, "failed": None}
    started = time.monotonic()
    try:
        def heap_lines():
            return [r["heap"] for r in board.records("heap")]

        def waiting(what, predicate):
            result["failed"] = what
            board.wait(lambda: predicate() or not board.running(), STEP_TIMEOUT_S, what)
            if not board.running():
                raise RuntimeError("board exited")

        waiting("all %d members alive" % n, lambda: any(h["members"] == n for h in heap_lines()))
        waiting("the leader followed", lambda: board.leader() is not None
                and any(h["verifications"] >= 1 for h in heap_lines()))
        first = board.leader()
        cluster.crash(first[0])
        waiting("failover", lambda: board.leader() is not None and board.leader()[0] != first[0])
        cluster.restart(first[0])
        waiting("failback", lambda: board.leader() is not None and board.leader()[0] == first[0]
                and board.leader()[1] > first[1])
        mark = len(heap_lines())
        waiting("two more heap lines", lambda: len(heap_lines()) >= mark + 2)
        result["failed"] = None
        result["ok"] = True
    except Exception as exc:  # a timeout, an exit: this heap size does not hold
        result["error"] = str(exc).split("\n")[0]
    finally:
        board.kill()
        cluster.stop_thread()
        shutil.rmtree(workdir, ignore_errors=True)
    heaps = [r["heap"] for r in board.records("heap")]
    start = board.records(event="started")
    result["seconds"] = round(time.monotonic() - started, 1)
    result["start_alloc"] = start[0].get("heap_alloc") if start else None
    allocs = sorted(h["alloc"] for h in heaps) or [0]
    result["peak_alloc"] = allocs[-1]
    # Most samples fall outside a signature check: the median is the steady state.
    result["median_alloc"] = allocs[len(allocs) // 2]
    result["memory_errors"] = heaps[-1]["memory_errors"] if heaps else None
    result["verifications"] = heaps[-1]["verifications"] if heaps else 0
    if result["memory_errors"]:
        result["ok"] = False
        result["failed"] = result["failed"] or "out-of-memory errors"
    return result


def describe(result):
    return "%-6s members %3d heap %-5s %s peak %6s B median %6s B (at start %6s B) memory errors %s%s" % (
        result["runtime"], result["members"], result["heapsize"], "ok  " if result["ok"] else "FAIL",
        result["peak_alloc"], result["median_alloc"], result["start_alloc"], result["memory_errors"],
        "" if result["ok"] else "  (%s)" % (result.get("failed") or result.get("error")))


def bisect(n, runtime, low, high, trials, step=8 * 1024):
    """The smallest heap size (bytes, a multiple of step) in (low, high] where n members pass trials times."""
    runs = []

    def holds(size):
        for trial in range(trials):
            result = run_scenario(n, runtime, format_heapsize(size), seed=trial + 1)
            runs.append(result)
            print("bisect: " + describe(result), flush=True)
            if not result["ok"]:
                return False
        return True

    if not holds(high):
        return None, runs
    low, high = low // step, high // step
    while high - low > 1:
        middle = (low + high) // 2
        if holds(middle * step):
            high = middle
        else:
            low = middle
    return high * step, runs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", default="8,32,64", help="cluster sizes, board included (default %(default)s)")
    parser.add_argument("--heapsize", help="heap for the --members runs (default: the runtime's)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cluster size (default 1)")
    parser.add_argument("--bisect", type=int, default=32, metavar="N", help="members for the bisection (0: none)")
    parser.add_argument("--trials", type=int, default=2, help="passes in a row a heap size needs (default 2)")
    parser.add_argument("--runtime", choices=("frozen", "mpy", "source"), help="how the board runs (default: best)")
    parser.add_argument("--low", default="64k", help="bisection: a heap size known too small")
    parser.add_argument("--high", help="bisection: a heap size that holds (default: the runtime's x 2)")
    args = parser.parse_args(argv)
    runtime = board_runtime(args.runtime)
    if runtime is None:
        print("no micropython interpreter for runtime %s" % (args.runtime or "(any)"), file=sys.stderr)
        return 2
    print("board runtime: %r" % (runtime,), flush=True)
    summary = {"runtime": runtime.kind, "interpreter": runtime.interpreter, "runs": []}
    for n in [int(x) for x in args.members.split(",") if x]:
        for k in range(args.repeat):
            result = run_scenario(n, runtime, args.heapsize or runtime.heapsize, seed=k + 1)
            summary["runs"].append(result)
            print(describe(result), flush=True)
    if args.bisect:
        high = parse_heapsize(args.high) if args.high else 2 * parse_heapsize(runtime.heapsize)
        smallest, runs = bisect(args.bisect, runtime, parse_heapsize(args.low), high, args.trials)
        summary["bisect"] = {"members": args.bisect, "trials": args.trials,
                             "smallest_heapsize": format_heapsize(smallest) if smallest else None,
                             "runs": runs}
        print("smallest heap holding %d members (%d passes in a row): %s" % (
            args.bisect, args.trials, format_heapsize(smallest) if smallest else "none up to %s"
            % format_heapsize(high)), flush=True)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
