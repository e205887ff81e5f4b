"""A small client library for the agent's local API (see agent/api.py).

``Client`` is synchronous (plain sockets), ``AsyncClient`` is its asyncio
twin; both open one connection per call (watch keeps its own), so a client
object holds no socket between calls and survives agent restarts. Replies
come back as dicts without the "ok" and "api" envelope. Every reply's "api"
version is checked before anything else is trusted.

    from agent.client import Client
    if Client().leader()["is_leader"]:
        run_the_job()

For a program that should do its work only while this node leads:
``Client().wait_until_leader()`` blocks until it does (a script), and
``async with leadership() as lease`` (agent/leadership.py) runs a body that
is cancelled when this node stops leading or its agent is lost.
"""

import asyncio
import json
import os
import socket
import stat
import time

from agent.api import API_VERSION
from agent.paths import SYSTEM_SOCKET_PATH, socket_in

__all__ = [
    "API_VERSION",
    "DEFAULT_TIMEOUT",
    "SYSTEM_SOCKET_PATH",
    "AgentTimeout",
    "AgentUnreachable",
    "ApiError",
    "AsyncClient",
    "Client",
    "ClientError",
    "Lease",
    "LeadershipLost",
    "default_socket_path",
    "leadership",
]

DEFAULT_TIMEOUT = 5.0  # seconds for connect, request and reply together
# Replies grow with the cluster ("members"); this bounds memory, not the cluster.
MAX_REPLY_BYTES = 16 * 1024 * 1024


class ClientError(Exception):
    """Base of every error this module raises."""


class ApiError(ClientError):
    """The agent answered with an error, or with something this client cannot use."""


class AgentUnreachable(ClientError):
    """The agent's socket cannot be reached; the message names the path and the likely cause."""


class AgentTimeout(AgentUnreachable):
    """The agent did not answer in time."""


def default_socket_path() -> str:
    """The socket to talk to: $LEADERD_SOCKET, else the user's runtime dir's one if present, else /run's."""
    explicit = os.environ.get("LEADERD_SOCKET")
    if explicit:
        return explicit
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        candidate = socket_in(runtime_dir)
        if os.path.exists(candidate):
            return candidate
    return SYSTEM_SOCKET_PATH


def _unreachable(path: str, exc: BaseException) -> AgentUnreachable:
    """The AgentUnreachable for a failed connect to path, naming the likely cause."""
    if isinstance(exc, FileNotFoundError):
        return AgentUnreachable(
            "no agent socket at %s: is leaderd running? (start it with `leaderd run`, "
            "or point at its socket with --socket / $LEADERD_SOCKET)" % path
        )
    if isinstance(exc, ConnectionRefusedError):
        kind = _not_a_socket(path)
        if kind is not None:
            return AgentUnreachable(
                "%s is %s, not a socket: point --socket (or $LEADERD_SOCKET) at the agent's "
                "api.socket, or use --config with the agent's config file" % (path, kind)
            )
        return AgentUnreachable(
            "nothing listens on %s: leaderd is not running (the socket file is stale)" % path
        )
    if isinstance(exc, PermissionError):
        return AgentUnreachable(
            "permission denied connecting to %s: run as a member of the socket's group "
            "(api.group in the agent's config) or as root" % path
        )
    if isinstance(exc, (socket.timeout, asyncio.TimeoutError, TimeoutError)):
        return AgentTimeout("agent at %s did not accept the connection in time: is it hung?" % path)
    return AgentUnreachable("cannot connect to the agent at %s: %s" % (path, exc))


def _not_a_socket(path: str):
    """What path is ("a regular file", "a directory", ...) when it exists and is not a socket; else None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISSOCK(mode):
        return None
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "a special file"


def _encode_request(cmd: str, **fields) -> bytes:
    request = {"cmd": cmd}
    request.update(fields)
    return json.dumps(request).encode("utf-8") + b"\n"


def _decode_line(path: str, line: bytes) -> dict:
    try:
        obj = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError("malformed reply from the agent at %s: %s" % (path, exc)) from None
    if not isinstance(obj, dict):
        raise ApiError("malformed reply from the agent at %s: not a JSON object" % path)
    return obj


def _check_reply(path: str, reply: dict) -> dict:
    """The payload of a reply (without "ok" and "api"); ApiError on a version mismatch or error."""
    api = reply.get("api")
    if api != API_VERSION:
        raise ApiError(
            "the agent at %s speaks API version %s, this client speaks %d: "
            "install the same leaderd version for both" % (path, json.dumps(api), API_VERSION)
        )
    if reply.get("ok") is not True:
        raise ApiError(str(reply.get("error") or "the agent reported an error without a message"))
    return {key: value for key, value in reply.items() if key not in ("ok", "api")}


def _check_event(path: str, event: dict) -> dict:
    if event.get("ok") is False:
        raise ApiError(str(event.get("error") or "the agent ended the watch with an error"))
    return event


def _closed(path: str, what: str) -> AgentUnreachable:
    return AgentUnreachable(
        "the agent at %s closed the connection %s (agent stopped or restarting?)" % (path, what)
    )


def _watch_ended(path: str) -> AgentUnreachable:
    return AgentUnreachable(
        "the watch stream from %s ended: the agent stopped, or dropped this client "
        "for reading too slowly" % path
    )


# ---------------------------------------------------------------- synchronous


class _LineSocket:
    """A connected UNIX socket read line by line, each operation within a deadline."""

    def __init__(self, path: str, timeout):
        self.path = path
        self._buffer = b""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.005
        while True:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self._sock.settimeout(timeout)
                self._sock.connect(path)
                return
            except BlockingIOError as exc:
                # The agent's listen queue is full (a flood of connections):
                # Linux fails a UNIX connect at once rather than waiting, so
                # try again, backing off, until the deadline.
                self._sock.close()
                if deadline is not None and time.monotonic() + delay >= deadline:
                    raise AgentTimeout("agent at %s did not accept the connection in time: its listen "
                                       "queue stayed full (%s)" % (path, exc)) from None
                time.sleep(delay)
                delay = min(2 * delay, 0.1)
            except OSError as exc:
                self._sock.close()
                raise _unreachable(path, exc) from None

    def close(self) -> None:
        self._sock.close()

    def send(self, data: bytes, deadline) -> None:
        self._settimeout(deadline)
        try:
            self._sock.sendall(data)
        except socket.timeout:
            raise AgentTimeout("the agent at %s is not reading requests: is it hung?" % self.path) from None
        except (BrokenPipeError, ConnectionResetError):
            pass  # the agent hung up first; its reply, if any, is waiting to be read and says why
        except OSError as exc:
            raise AgentUnreachable("cannot send to the agent at %s: %s" % (self.path, exc)) from None

    def readline(self, deadline):
        """The next line without its newline, or None at end of stream."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
                return line
            if len(self._buffer) > MAX_REPLY_BYTES:
                raise ApiError("reply from the agent at %s exceeds %d bytes" % (self.path, MAX_REPLY_BYTES))
            self._settimeout(deadline)
            try:
                chunk = self._sock.recv(65536)
            except socket.timeout:
                raise AgentTimeout("no reply from the agent at %s in time: is it hung?" % self.path) from None
            except OSError as exc:
                raise AgentUnreachable("lost the connection to the agent at %s: %s" % (self.path, exc)) from None
            if not chunk:
                return None
            self._buffer += chunk

    def _settimeout(self, deadline) -> None:
        if deadline is None:
            self._sock.settimeout(None)
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AgentTimeout("no reply from the agent at %s in time: is it hung?" % self.path)
        self._sock.settimeout(remaining)


class Client:
    """A synchronous client of the local API; one short connection per call."""

    def __init__(self, path=None, timeout: float = DEFAULT_TIMEOUT):
        self.path = os.fspath(path) if path is not None else default_socket_path()
        self.timeout = timeout

    def leader(self) -> dict:
        """{"leader", "term", "address", "self", "is_leader", "insecure"}."""
        return self._request("leader")

    def members(self) -> dict:
        """{"members": [{"name", "address", "state", "priority", "eligible", "incarnation"}, ...]}."""
        return self._request("members")

    def status(self) -> dict:
        """The agent's status report."""
        return self._request("status")

    def version(self) -> dict:
        """{"version": the agent's version string}."""
        return self._request("version")

    def maintenance(self, on) -> dict:
        """Turns maintenance mode on (this node does not lead; a leader hands over) or off."""
        return self._request("maintenance", on=bool(on))

    def transfer(self, to=None) -> dict:
        """As leader: hands the role to member `to` (None: the next in rank) now; ApiError says why not."""
        return self._request("transfer", to=to)

    def wait_until_leader(self, timeout=None, interval=0.25):
        """Blocks until this node leads; its `leader` reply (reply["term"]: the fencing token).

        Asks every `interval` seconds; None when `timeout` seconds pass first.
        An agent that cannot be reached raises AgentUnreachable, as leader()
        does. What it returns is true when it returns: a script that runs
        long should ask again (`leader()`), or use leadership() instead.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            reply = self.leader()
            if reply.get("is_leader"):
                return reply
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            time.sleep(interval if left is None else min(interval, left))

    def watch(self):
        """A generator of event dicts: the current leader first, then each change.

        Runs until the caller stops iterating (closing the generator closes the
        connection); raises AgentUnreachable if the agent ends the stream.
        """
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        conn = _LineSocket(self.path, self.timeout)
        try:
            conn.send(_encode_request("watch"), deadline)
            ack = conn.readline(deadline)
            if ack is None:
                raise _closed(self.path, "before acknowledging the watch")
            _check_reply(self.path, _decode_line(self.path, ack))
            while True:
                line = conn.readline(None)
                if line is None:
                    raise _watch_ended(self.path)
                yield _check_event(self.path, _decode_line(self.path, line))
        finally:
            conn.close()

    def _request(self, cmd: str, **fields) -> dict:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        conn = _LineSocket(self.path, self.timeout)
        try:
            conn.send(_encode_request(cmd, **fields), deadline)
            line = conn.readline(deadline)
        finally:
            conn.close()
        if line is None:
            raise _closed(self.path, "without replying to %r" % cmd)
        return _check_reply(self.path, _decode_line(self.path, line))


# -------------------------------------------------------------------- asyncio


class AsyncClient:
    """The asyncio twin of Client: the same methods, as coroutines."""

    def __init__(self, path=None, timeout: float = DEFAULT_TIMEOUT):
        self.path = os.fspath(path) if path is not None else default_socket_path()
        self.timeout = timeout

    async def leader(self) -> dict:
        """{"leader", "term", "address", "self", "is_leader", "insecure"}."""
        return await self._request("leader")

    async def members(self) -> dict:
        """{"members": [{"name", "address", "state", "priority", "eligible", "incarnation"}, ...]}."""
        return await self._request("members")

    async def status(self) -> dict:
        """The agent's status report."""
        return await self._request("status")

    async def version(self) -> dict:
        """{"version": the agent's version string}."""
        return await self._request("version")

    async def maintenance(self, on) -> dict:
        """Turns maintenance mode on (this node does not lead; a leader hands over) or off."""
        return await self._request("maintenance", on=bool(on))

    async def transfer(self, to=None) -> dict:
        """As leader: hands the role to member `to` (None: the next in rank) now; ApiError says why not."""
        return await self._request("transfer", to=to)

    async def watch(self):
        """An async generator of event dicts: the current leader first, then each change."""
        reader, writer = await self._connect()
        try:
            ack = await self._exchange(reader, writer, _encode_request("watch"))
            if not ack:
                raise _closed(self.path, "before acknowledging the watch")
            _check_reply(self.path, _decode_line(self.path, ack))
            while True:
                line = await self._readline(reader)
                if not line:
                    raise _watch_ended(self.path)
                yield _check_event(self.path, _decode_line(self.path, line))
        finally:
            writer.close()

    async def _request(self, cmd: str, **fields) -> dict:
        reader, writer = await self._connect()
        try:
            line = await self._exchange(reader, writer, _encode_request(cmd, **fields))
        finally:
            writer.close()
        if not line:
            raise _closed(self.path, "without replying to %r" % cmd)
        return _check_reply(self.path, _decode_line(self.path, line))

    async def _connect(self):
        try:
            return await asyncio.wait_for(
                asyncio.open_unix_connection(self.path, limit=MAX_REPLY_BYTES), self.timeout
            )
        except (OSError, asyncio.TimeoutError) as exc:
            raise _unreachable(self.path, exc) from None

    async def _exchange(self, reader, writer, request: bytes) -> bytes:
        """Send one request and read one reply line within the timeout (b"" at EOF)."""

        async def exchange():
            try:
                writer.write(request)
                await writer.drain()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the agent hung up first; its reply, if any, is waiting to be read and says why
            return await self._readline(reader)

        try:
            return await asyncio.wait_for(exchange(), self.timeout)
        except asyncio.TimeoutError:
            raise AgentTimeout("no reply from the agent at %s in time: is it hung?" % self.path) from None
        except OSError as exc:
            raise AgentUnreachable("lost the connection to the agent at %s: %s" % (self.path, exc)) from None

    async def _readline(self, reader) -> bytes:
        """The next line without its newline; b"" at end of stream."""
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise _closed(self.path, "in the middle of a reply") from None
            return b""
        except (asyncio.LimitOverrunError, ValueError):
            raise ApiError("reply from the agent at %s exceeds %d bytes" % (self.path, MAX_REPLY_BYTES)) from None
        except OSError as exc:
            raise AgentUnreachable("lost the connection to the agent at %s: %s" % (self.path, exc)) from None
        return line[:-1]


# The leadership context manager, here for `from agent.client import leadership`
# (agent/leadership.py uses AsyncClient, defined above).
from agent.leadership import Lease, LeadershipLost, leadership  # noqa: E402
