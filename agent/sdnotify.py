"""systemd notify protocol (sd_notify): READY=1, STATUS=..., WATCHDOG=1.

About thirty lines, so no dependency: one datagram per message to the
socket named by $NOTIFY_SOCKET (a leading "@" means the abstract namespace).
"""

import os
import socket


class Notifier:
    """Sends sd_notify messages; does nothing when not run by systemd."""

    def __init__(self, address=None):
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self.address = None
        self._sock = None
        if address:
            self.address = "\0" + address[1:] if address.startswith("@") else address
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)

    @property
    def enabled(self):
        """Whether a notify socket is configured."""
        return self._sock is not None

    def notify(self, message):
        """Sends one message such as "READY=1"; errors are swallowed (returns False)."""
        if self._sock is None:
            return False
        try:
            self._sock.sendto(message.encode("utf-8"), self.address)
            return True
        except OSError:
            return False

    def close(self):
        """Closes the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s():
    """Half of WatchdogSec in seconds when systemd asked for pings for this process, else None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2e6 if value > 0 else None
