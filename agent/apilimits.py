"""The local API socket's limits: budgets of request and watch slots, a
reserve for privileged uids, per-uid shares, and what the kernel says about
a connection (its peer's uid, whether a request is waiting in it).

ApiServer (agent/api.py) holds one Budget per kind of connection and one
Connection per accepted connection; docs/OPERATIONS.md ("Limits of the API
socket") says what an operator sees.
"""

import asyncio
import fcntl
import socket
import struct
import termios

# The defaults of ApiServer's limits (OPERATIONS.md, "Limits of the API socket").
# Request connections at once, all uids together; 1/8 of them are reserved, a uid gets 1/4.
MAX_CLIENTS = 64
# Watch connections at once, a budget of their own; the same shares.
MAX_WATCHERS = 128
# Seconds a request connection has to send each complete request line. The
# client library sends its request as soon as it connects; 2 s leaves room
# for a loaded machine, and closes idle connections before they pile up.
IDLE_TIMEOUT_S = 2.0

# struct ucred {pid_t pid; uid_t uid; gid_t gid;} as SO_PEERCRED returns it (Linux).
_UCRED = struct.Struct("3i")

def peer_uid(writer: asyncio.StreamWriter):
    """The uid of the process at the other end of a UNIX socket (SO_PEERCRED), or None where unknown."""
    sock = writer.get_extra_info("socket")
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except (AttributeError, OSError):  # not Linux, or not a UNIX socket
        return None
    return _UCRED.unpack(creds)[1]


def request_waiting(client) -> bool:
    """Whether client's request may be on its way: a complete line read but not handled, or bytes not read yet.

    A connection accepted in the same batch as others has its request still
    in the kernel; a held one has nothing there (the transport reads what
    comes at once), at most a partial line in the reader's buffer.
    """
    if b"\n" in getattr(client.reader, "_buffer", b""):  # StreamReader's buffer (no public accessor)
        return True
    sock = client.writer.get_extra_info("socket")
    try:
        waiting = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except (AttributeError, OSError, ValueError):
        return False
    return struct.unpack("i", waiting)[0] > 0


class Budget:
    """Slots of one kind: `total` at most, the last `reserved` of them for privileged uids, `per_uid` for any other uid."""

    __slots__ = ("kind", "total", "reserved", "per_uid", "used", "by_uid")

    def __init__(self, kind: str, total: int, reserved: int, per_uid: int):
        if total < 1:
            raise ValueError("max_%s must be at least 1, got %r" % (kind, total))
        if not 0 <= reserved < total:
            raise ValueError("reserved_%s must be between 0 and max_%s - 1 (%d), got %r"
                             % (kind, kind, total - 1, reserved))
        if per_uid < 1:
            raise ValueError("max_%s_per_uid must be at least 1, got %r" % (kind, per_uid))
        self.kind = kind
        self.total = total
        self.reserved = reserved
        self.per_uid = per_uid
        self.used = 0
        self.by_uid = {}  # unprivileged uid -> slots it holds

    def refusal(self, uid, privileged: bool):
        """None if uid may take a slot now, else (reason, the message for the refused client)."""
        if privileged:
            if self.used >= self.total:
                return "full", "too many %s (max %d); try again later" % (self.kind, self.total)
            return None
        if self.by_uid.get(uid, 0) >= self.per_uid:
            return "uid", "too many %s from uid %s (max %d per uid); try again later" % (
                self.kind, uid, self.per_uid)
        if self.used >= self.total - self.reserved:
            return "full", "too many %s (max %d, of which %d are kept for root and the agent's uid); " \
                           "try again later" % (self.kind, self.total, self.reserved)
        return None

    def take(self, uid, privileged: bool) -> None:
        self.used += 1
        if not privileged:
            self.by_uid[uid] = self.by_uid.get(uid, 0) + 1

    def give_back(self, uid, privileged: bool) -> None:
        self.used -= 1
        if not privileged:
            left = self.by_uid[uid] - 1
            if left:
                self.by_uid[uid] = left
            else:
                del self.by_uid[uid]


class Connection:
    """One accepted connection: its peer's uid, the slot it holds, whether it has sent a request yet."""

    __slots__ = ("uid", "privileged", "reader", "writer", "task", "slot", "requested")

    def __init__(self, uid, privileged: bool, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, task):
        self.uid = uid
        self.privileged = privileged
        self.reader = reader
        self.writer = writer
        self.task = task
        self.slot = None  # None, "request" or "watch"
        self.requested = False
