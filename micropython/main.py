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

import gc
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
    host = None
    try:
        import network  # noqa: F401  only to know whether this port has WiFi (the unix port has not)
    except ImportError:
        network = None
    if network is not None:
        import wifi
        try:
            host = wifi.connect()
        except (OSError, ValueError) as exc:
            error("cannot join the WiFi: %s" % (exc,))
            return 1
    import leaderd_config
    try:
        config = leaderd_config.load(path, default_host=host)
    except leaderd_config.ConfigError as exc:
        for line in exc.errors:
            error("%s: %s" % (exc.source, line))
        return 2
    # The config is a plain dict: the checker, its rules and the timing
    # profiles have done their job, and their bytecode is heap to win back.
    del leaderd_config
    del sys.modules["leaderd_config"]
    del sys.modules["agent.core.profile"]
    del sys.modules["agent.core.rules"]
    import agent.core
    del agent.core.profile
    del agent.core.rules
    gc.collect()
    import asyncio
    import leaderd
    try:
        agent = leaderd.Agent(config)
    except ValueError as exc:
        error("%s: %s" % (path, exc))
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
