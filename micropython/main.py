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
"""

import gc
import sys


def _add_checkout_paths(argv):
    # Run from micropython/ in a checkout, the repository root holds agent/:
    # put it on the path unless agent/ is importable already (a build, a board).
    script = argv[0] if argv else ""
    cut = script.rfind("/")
    here = script[:cut] if cut > 0 else "."
    for path in (here, here + "/.."):
        if path not in sys.path:
            sys.path.append(path)


def _forget(module):
    # Drops a module no longer needed (its bytecode sits in the heap unless frozen).
    del sys.modules[module]
    gc.collect()


def _error(text):
    import json
    print(json.dumps({"log": text, "level": "error"}))


def main(argv):
    """Runs the agent with the config named in argv[1] (default leaderd.json); returns the exit status."""
    path = argv[1] if len(argv) > 1 else "leaderd.json"
    _add_checkout_paths(argv)
    import wifi
    try:
        host = wifi.connect()
    except (OSError, ValueError) as exc:
        _error("wifi: %s" % (exc,))
        return 1
    if host is None:
        wifi = _forget("wifi")  # no WiFi here (unix port): its bytecode is heap to win back
    import leaderd_config
    try:
        cfg = leaderd_config.load(path, default_host=host)
    except leaderd_config.ConfigError as exc:
        for line in exc.errors:
            _error("%s: %s" % (exc.source, line))
        return 2
    # The config is a plain dict: the checker's ~15 KB of bytecode can go.
    leaderd_config = _forget("leaderd_config")
    import asyncio
    import leaderd
    try:
        agent = leaderd.Agent(cfg)
    except ValueError as exc:
        _error("%s: %s" % (path, exc))
        return 2

    async def run():
        if host is not None:
            asyncio.create_task(wifi.keep_connected(log=lambda text: agent.log("warning", text)))
        await agent.run()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        agent.shutdown()
        return 0
    except ValueError as exc:
        _error("%s: %s" % (path, exc))
        return 2
    except OSError as exc:
        _error("cannot start: %s" % (exc,))
        return 1
    return 0


if __name__ == "__main__":
    status = main(sys.argv)
    if status:
        sys.exit(status)
