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

CONFIG_PATH = "wifi.json"
CHECK_INTERVAL_MS = 5000


def _load(path):
    with open(path) as handle:
        data = json.load(handle)
    if not isinstance(data, dict) or not isinstance(data.get("ssid"), str) or not data["ssid"]:
        raise ValueError("%s: expected {\"ssid\": \"...\", \"password\": \"...\"}" % path)
    return data


def _timeout_ms(value):
    if value is None:
        return 20000
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value * 1000)
    text = str(value).strip()
    if text.endswith("ms"):
        return int(text[:-2])
    if text.endswith("s"):
        return int(float(text[:-1]) * 1000)
    return int(float(text) * 1000)


def _interface():
    try:
        import network
    except ImportError:
        return None, None
    return network, network.WLAN(network.STA_IF)


def connect(path=CONFIG_PATH, log=print):
    """Connects with the credentials in path; returns the IP address, or None without WiFi (unix port)."""
    network, wlan = _interface()
    if wlan is None:
        return None
    cfg = _load(path)
    if cfg.get("hostname"):
        try:
            network.hostname(cfg["hostname"])
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
        wlan.connect(cfg["ssid"], cfg.get("password", ""))
        deadline = time.ticks_add(time.ticks_ms(), _timeout_ms(cfg.get("timeout")))
        while not wlan.isconnected():
            if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                raise OSError("wifi: no connection to %r within the timeout (status %s)"
                              % (cfg["ssid"], wlan.status()))
            time.sleep_ms(100)
    address = wlan.ifconfig()[0]
    log("wifi: connected to %r as %s" % (cfg["ssid"], address))
    return address


async def keep_connected(path=CONFIG_PATH, log=print):
    """A task: checks the link every few seconds and reconnects when it dropped."""
    import asyncio
    network, wlan = _interface()
    if wlan is None:
        return
    cfg = _load(path)
    while True:
        await asyncio.sleep_ms(CHECK_INTERVAL_MS)
        if wlan.isconnected():
            continue
        log("wifi: link lost, reconnecting to %r" % cfg["ssid"])
        try:
            wlan.disconnect()
        except OSError:
            pass
        wlan.connect(cfg["ssid"], cfg.get("password", ""))
