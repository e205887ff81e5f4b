"""WiFi for the board agent, kept apart from its config: credentials live in wifi.json only.

    {"ssid": "home", "password": "secret", "hostname": "board-1", "timeout": "20s"}

``connect()`` joins the network (station mode, power saving off: a radio
that sleeps between beacons answers probes 100-300 ms late, which the
cluster reads as a failing node) and returns this board's IP address.
``keep_connected()`` is a task that reconnects after the access point goes
away. On a port without the network module (the unix port) both do nothing
and connect() returns None.
"""

import json
import time

from micropython import const

_CONFIG_PATH = const("wifi.json")
_CHECK_INTERVAL_MS = const(5000)


def _station(path):
    """(the network module, the station interface, the credentials in path), or None without WiFi."""
    try:
        import network
    except ImportError:
        return None
    with open(path) as handle:
        credentials = json.load(handle)
    if not isinstance(credentials, dict) or not isinstance(credentials.get("ssid"), str) \
            or not credentials["ssid"]:
        raise ValueError("%s: expected {\"ssid\": \"...\", \"password\": \"...\"}" % path)
    return network, network.WLAN(network.STA_IF), credentials


def connect(path=_CONFIG_PATH, log=print):
    """Connects with the credentials in path; returns the IP address, or None without WiFi (unix port)."""
    station = _station(path)
    if station is None:
        return None
    network, wlan, credentials = station
    if credentials.get("hostname"):
        try:
            network.hostname(credentials["hostname"])
        except (AttributeError, ValueError, OSError):
            pass
    wlan.active(True)
    # No power saving: PM_NONE on ESP32 and Pico W (older Pico W firmware: 0xa11140).
    for mode in (getattr(wlan, "PM_NONE", None), 0xA11140):
        if mode is None:
            continue
        try:
            wlan.config(pm=mode)
            break
        except (AttributeError, ValueError, OSError, TypeError):
            pass
    if not wlan.isconnected():
        wlan.connect(credentials["ssid"], credentials.get("password", ""))
        # "timeout": "20s", "500ms" or a number of seconds; default 20 s.
        timeout = credentials.get("timeout")
        if timeout is None:
            timeout_ms = 20000
        elif isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
            timeout_ms = int(timeout * 1000)
        else:
            timeout = str(timeout).strip()
            if timeout.endswith("ms"):
                timeout_ms = int(timeout[:-2])
            else:
                timeout_ms = int(float(timeout[:-1] if timeout.endswith("s") else timeout) * 1000)
        deadline = time.ticks_add(time.ticks_ms(), timeout_ms)
        while not wlan.isconnected():
            if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                raise OSError("no connection to %r within the timeout (status %s)"
                              % (credentials["ssid"], wlan.status()))
            time.sleep_ms(100)
    address = wlan.ifconfig()[0]
    log("wifi: connected to %r as %s" % (credentials["ssid"], address))
    return address


async def keep_connected(path=_CONFIG_PATH, log=print):
    """A task: checks the link every few seconds and reconnects when it dropped."""
    import asyncio
    station = _station(path)
    if station is None:
        return
    network, wlan, credentials = station
    while True:
        await asyncio.sleep_ms(_CHECK_INTERVAL_MS)
        if wlan.isconnected():
            continue
        log("wifi: link lost, reconnecting to %r" % credentials["ssid"])
        try:
            wlan.disconnect()
        except OSError:
            pass
        wlan.connect(credentials["ssid"], credentials.get("password", ""))
