"""Starts the leaderd board agent.

On a board this file is /main.py, run at every boot: it connects to WiFi
(wifi.json), reads /leaderd.json and runs the agent until reset. On the unix
port, from a checkout or a build folder::

    micropython -X heapsize=128k build/micropython/main.py CONFIG.json
    micropython -X heapsize=512k micropython/main.py CONFIG.json   # from source

Output: one JSON object per line on stdout (leaderd.py says which). Exit
status 2 for a bad config (every problem printed as a {"log": ...} line),
1 when the agent cannot start (the port is taken, say), 0 after Ctrl-C
(the board leaves the cluster first).

This file runs from source (a board runs main.py, not main.mpy), so the
compiler interns every name in it for good: it keeps to few names, most of
them ones the agent has anyway.
"""

import sys


def error(text):
    """Prints text as a {"log": text, "level": "error"} line."""
    import json
    print(json.dumps({"log": text, "level": "error"}))


def main(argv):
    """Runs the agent with the config named in argv[1] (default leaderd.json); returns the exit status."""
    # Run from micropython/ in a checkout, the repository root holds agent/:
    # put it on the path unless agent/ is importable already (a build, a board).
    here = argv[0][:argv[0].rfind("/")] if argv and argv[0].rfind("/") > 0 else "."
    for path in (here, here + "/.."):
        if path not in sys.path:
            sys.path.append(path)
    path = argv[1] if len(argv) > 1 else "leaderd.json"
    # WiFi, config and Agent: leaderd_main's work, dropped after it.
    import leaderd_main
    ready = leaderd_main.prepare(path, error)
    del leaderd_main
    del sys.modules["leaderd_main"]
    if isinstance(ready, int):
        return ready
    agent, host = ready
    import asyncio

    async def run():
        if host is not None:
            import wifi
            asyncio.create_task(wifi.keep_connected(log=lambda text: agent.log("warning", text)))
        await agent.run()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        agent.shutdown()
        return 0
    except ValueError as exc:
        error("%s: %s" % (path, exc))
        return 2
    except OSError as exc:
        error("cannot start: %s" % (exc,))
        return 1
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    if code:
        sys.exit(code)
