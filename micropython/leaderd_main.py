"""What main.py does before the agent runs: WiFi, the config, the Agent.

A module of its own, loaded by main.py and dropped once the Agent is made
(as leaderd_boot.py is after the start): main.py is compiled from source on
the board and its bytecode stays in the heap for as long as the agent runs,
so it keeps only the run itself.
"""

import gc
import sys


def prepare(path, error):
    """(the Agent, the WiFi address or None) for the config file at path, or the exit status.

    error(text) reports a problem (main.py prints it as a JSON line).
    """
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
    import leaderd
    try:
        return leaderd.Agent(config), host
    except ValueError as exc:
        error("%s: %s" % (path, exc))
        return 2
