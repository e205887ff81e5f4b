"""The daemon's local API: newline-delimited JSON over a UNIX stream socket.

Theory of operation. Each connection reads one request object per line,
``{"cmd": "leader"}`` and friends, and writes one reply object per line.
Every reply carries ``"ok"`` and ``"api"`` (the protocol version, 1); errors
add ``"error"`` with a message. Bad input is the peer's problem, never ours
(STYLE.md habit 5): each bad line gets an error reply and the connection stays
usable, except a line longer than ``max_request_bytes``, after which the
stream cannot be resynchronised, so that connection is closed. Nothing a
client sends or fails to read raises out of a connection handler.

``{"cmd": "watch"}`` turns a connection into an event stream: an
acknowledgement, a snapshot of the current leader, then one line per
``ApiServer.publish(event)``. ``publish`` is synchronous and never waits: each
watcher has a bounded queue, and a watcher whose queue is full is
disconnected, so a slow or vanished reader costs at most ``watch_queue``
events of memory and never delays the agent.

Limits: nobody can lock the API out (issue 11, item 4). Request connections
and watchers have separate budgets (``max_clients``, ``max_watchers``), so
watchers never crowd out requests. The peer's uid comes from SO_PEERCRED:
the last ``reserved_clients`` / ``reserved_watchers`` slots of each budget
are kept for root and the agent's own uid (``reserved_uids``), and any other
uid holds at most ``max_clients_per_uid`` / ``max_watchers_per_uid``. A
request connection has ``idle_timeout`` seconds to send each complete request
line, then it is closed. A new connection that would be refused first
replaces the oldest connection of the same uid that has sent no request yet,
if there is one: a uid's idle connections never lock out that uid itself.
Each refused, replaced or timed-out connection gets one error line before it
is closed, and is counted (``counters()``); warnings about them are logged at
most once a minute per reason (agent/ratelimit.py).
"""

import asyncio
import inspect
import json
import logging
import os
import stat

from agent import __version__
from agent.apilimits import IDLE_TIMEOUT_S, MAX_CLIENTS, MAX_WATCHERS, Budget, Connection, peer_uid, \
    request_waiting
from agent.ratelimit import WarningLimiter

__all__ = [
    "API_VERSION",
    "COMMANDS",
    "ApiServer",
    "ApiStartError",
    "Refused",
    "agent_version",
]

log = logging.getLogger(__name__)

# The protocol version in every reply's "api" field. Raise it only for a change
# an old client would misread; adding keys to replies does not count.
API_VERSION = 1

COMMANDS = ("leader", "members", "status", "version", "watch", "maintenance", "transfer")
_COMMAND_LIST = ", ".join(COMMANDS)


class ApiStartError(RuntimeError):
    """The API socket could not be opened; the message says why and what to do."""


class _RequestError(Exception):
    """A request we answer with an error reply; the connection stays usable."""


class Refused(Exception):
    """Raised by the provider for a request it will not carry out; the message is the error reply."""


def agent_version() -> str:
    """leaderd's version (agent.__version__; importlib.metadata costs 2 MiB of RSS)."""
    return __version__


def _encode(obj: dict) -> bytes:
    """One reply or event as a JSON line; raises TypeError/ValueError if not JSON-able."""
    return json.dumps(obj, allow_nan=False).encode("utf-8") + b"\n"


def _error_line(message: str) -> bytes:
    return _encode({"ok": False, "api": API_VERSION, "error": message})


def _ok_reply(result) -> dict:
    """A provider's result dict as a successful reply: "ok" and "api" first, then the rest."""
    if not isinstance(result, dict):
        raise TypeError("provider returned %s, expected a dict" % type(result).__name__)
    reply = {"ok": True, "api": API_VERSION}
    for key, value in result.items():
        if key not in reply:
            reply[key] = value
    return reply


def _parse_request(line: bytes) -> dict:
    """One request line (without its newline) as a dict with a known "cmd".

    Raises _RequestError with a message fit for the error reply.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _RequestError("request is not valid UTF-8 (bad byte at offset %d)" % exc.start)
    try:
        request = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _RequestError("malformed JSON: %s at column %d" % (exc.msg, exc.colno))
    if not isinstance(request, dict):
        raise _RequestError(
            'request must be a JSON object like {"cmd": "leader"}, got %s' % _json_type(request)
        )
    if "cmd" not in request:
        raise _RequestError('missing "cmd"; expected one of: %s' % _COMMAND_LIST)
    cmd = request["cmd"]
    if not isinstance(cmd, str):
        raise _RequestError('"cmd" must be a string, got %s' % _json_type(cmd))
    if cmd not in COMMANDS:
        raise _RequestError("unknown cmd %s; expected one of: %s" % (json.dumps(cmd), _COMMAND_LIST))
    return request


def _json_type(value) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _resolve_gid(group) -> int:
    """A group name, gid int, or string of digits as a gid; ApiStartError if unknown."""
    if isinstance(group, bool):
        raise ApiStartError("api group %r: expected a group name or a numeric gid" % (group,))
    if isinstance(group, int):
        return group
    if isinstance(group, str) and group.isdigit():
        return int(group)
    if isinstance(group, str) and group:
        import grp  # Unix only, like the socket itself

        try:
            return grp.getgrnam(group).gr_gid
        except KeyError:
            raise ApiStartError(
                "api group %r does not exist; create it (e.g. with systemd-sysusers) "
                "or set api.group to an existing group" % group
            ) from None
    raise ApiStartError("api group %r: expected a group name or a numeric gid" % (group,))


def _resolve_mode(mode) -> int:
    """A socket mode as an int: 0o660, or an octal string like "0660"."""
    if isinstance(mode, str):
        try:
            mode = int(mode, 8)
        except ValueError:
            raise ApiStartError('api mode %r: expected octal permissions like "0660"' % mode) from None
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o777:
        shown = "%04o" % mode if isinstance(mode, int) and not isinstance(mode, bool) and mode >= 0 else repr(mode)
        raise ApiStartError('api mode %s: expected permissions between "0000" and "0777"' % shown)
    return mode


class _Watcher:
    """One watch connection: its bounded queue of encoded event lines and its transport."""

    __slots__ = ("queue", "writer", "dropped")

    def __init__(self, queue: asyncio.Queue, writer: asyncio.StreamWriter):
        self.queue = queue
        self.writer = writer
        self.dropped = False


class ApiServer:
    """The local API server on a UNIX stream socket; see the module docstring.

    provider supplies the answers: ``leader()``, ``members()``, ``status()``
    each return a dict (shapes in DESIGN.md); any of them may also be a
    coroutine function.
    """

    def __init__(
        self,
        path,
        provider,
        mode=0o660,
        group=None,
        max_request_bytes: int = 4096,
        max_clients: int = MAX_CLIENTS,
        watch_queue: int = 256,
        write_timeout: float = 5.0,
        idle_timeout: float = IDLE_TIMEOUT_S,
        max_watchers: int = MAX_WATCHERS,
        reserved_clients=None,
        reserved_watchers=None,
        max_clients_per_uid=None,
        max_watchers_per_uid=None,
        reserved_uids=None,
    ):
        if max_request_bytes < 64:
            raise ValueError("max_request_bytes must be at least 64, got %r" % (max_request_bytes,))
        if watch_queue < 2:
            # One slot for the leader snapshot, at least one for events.
            raise ValueError("watch_queue must be at least 2, got %r" % (watch_queue,))
        # None: the shares of the module's defaults (1/8 reserved, 1/4 per uid).
        self._requests = Budget(
            "clients", max_clients,
            max_clients // 8 if reserved_clients is None else reserved_clients,
            max(1, max_clients // 4) if max_clients_per_uid is None else max_clients_per_uid)
        self._watch_slots = Budget(
            "watchers", max_watchers,
            max_watchers // 8 if reserved_watchers is None else reserved_watchers,
            max(1, max_watchers // 4) if max_watchers_per_uid is None else max_watchers_per_uid)
        self.path = os.fspath(path)
        self.provider = provider
        self.mode = mode
        self.group = group
        self.max_request_bytes = max_request_bytes
        self.max_clients = max_clients
        self.max_watchers = max_watchers
        self.watch_queue = watch_queue
        # Seconds a reply or event may wait for the client to read it before
        # the connection is dropped (a client that stops reading).
        self.write_timeout = write_timeout
        # Seconds a request connection has to send each complete request (None: forever).
        self.idle_timeout = idle_timeout
        # The uids the reserved slots are kept for, and no per-uid cap applies to.
        self.reserved_uids = frozenset((0, os.geteuid()) if reserved_uids is None else reserved_uids)
        self._server = None
        self._socket_inode = None
        self._connections = set()  # handler tasks, rejected ones excluded
        self._watchers = set()
        self._fresh = {}  # uid -> {Connection: None} that sent no request yet, oldest first
        self.refused = 0  # connections refused (no request slot), all of them
        self.refused_per_uid = 0  # ... of which for the per-uid cap
        self.watch_refused = 0  # watch requests refused (no watcher slot)
        self.replaced = 0  # connections closed for a new one of the same uid (they had sent nothing)
        self.idle_closed = 0  # request connections closed by idle_timeout
        self._refusals = WarningLimiter()  # one WARNING a minute per reason; the counters count all

    def counters(self) -> dict:
        """The API's figures for `status --json`'s "stats": connections now, refusals so far."""
        return {
            "api_clients": self._requests.used, "watchers": self.watcher_count,
            "api_refused": self.refused, "api_refused_per_uid": self.refused_per_uid,
            "api_watch_refused": self.watch_refused, "api_replaced": self.replaced,
            "api_idle_closed": self.idle_closed,
        }

    @property
    def client_count(self) -> int:
        """Connections being served now, watchers included."""
        return len(self._connections)

    @property
    def request_count(self) -> int:
        """Request connections holding a slot now (watchers excluded)."""
        return self._requests.used

    @property
    def watcher_count(self) -> int:
        """Watch connections receiving published events now."""
        return len(self._watchers)

    # ----------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Listen on the socket path, replacing a stale socket file.

        Raises ApiStartError if another live agent answers on the path, if the
        path exists and is not a socket, or if the socket cannot be created,
        given its mode or its group.
        """
        if self._server is not None:
            raise RuntimeError("ApiServer.start() called twice")
        mode = _resolve_mode(self.mode)
        gid = None if self.group is None else _resolve_gid(self.group)
        self._make_parent_dir()
        await self._remove_stale_socket()
        try:
            server = await asyncio.start_unix_server(
                self._on_connect, path=self.path, limit=self.max_request_bytes
            )
        except OSError as exc:
            raise ApiStartError("cannot listen on %s: %s" % (self.path, exc)) from exc
        self._server = server
        try:
            self._socket_inode = os.stat(self.path).st_ino
            os.chmod(self.path, mode)
            # A socket created in a directory of that group already has it
            # (and the systemd unit's seccomp filter forbids chown).
            if gid is not None and os.stat(self.path).st_gid != gid:
                try:
                    os.chown(self.path, -1, gid)
                except PermissionError:
                    raise ApiStartError(
                        "cannot give %s to group %r: permission denied (the agent must run as "
                        "root or be a member of that group)" % (self.path, self.group)
                    ) from None
        except BaseException:
            await self.close()
            raise
        log.debug("API listening on %s (mode %04o)", self.path, mode)

    async def close(self) -> None:
        """Stop listening, disconnect every client and remove the socket file."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._watchers.clear()
        try:
            await asyncio.wait_for(server.wait_closed(), self.write_timeout)
        except asyncio.TimeoutError:
            log.warning("API server on %s did not close within %.1f s", self.path, self.write_timeout)
        self._remove_own_socket()

    def _make_parent_dir(self) -> None:
        parent = os.path.dirname(os.path.abspath(self.path))
        if os.path.isdir(parent):
            return
        try:
            os.makedirs(parent, exist_ok=True)
            os.chmod(parent, 0o755)  # makedirs' mode is filtered by the umask
        except OSError as exc:
            raise ApiStartError("cannot create socket directory %s: %s" % (parent, exc)) from exc

    async def _remove_stale_socket(self) -> None:
        """Unlink a socket file nobody listens on; refuse if someone does."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ApiStartError(
                "%s exists and is not a socket; refusing to replace it "
                "(remove it or set api.socket to another path)" % self.path
            )
        try:
            _, writer = await asyncio.wait_for(asyncio.open_unix_connection(self.path), 2.0)
        except ConnectionRefusedError:
            log.info("removing stale API socket %s", self.path)
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise ApiStartError("cannot remove stale socket %s: %s" % (self.path, exc)) from exc
            return
        except FileNotFoundError:
            return
        except asyncio.TimeoutError:
            raise ApiStartError(
                "another process is listening on %s but not answering; stop it first "
                "(or set api.socket to another path)" % self.path
            ) from None
        except OSError as exc:
            raise ApiStartError("cannot check existing socket %s: %s" % (self.path, exc)) from exc
        writer.close()
        raise ApiStartError(
            "another agent is already serving on %s; stop it first "
            "(or set api.socket to another path)" % self.path
        )

    def _remove_own_socket(self) -> None:
        """Unlink the socket file, unless another process has since replaced it."""
        try:
            if os.stat(self.path).st_ino == self._socket_inode:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot remove API socket %s: %s", self.path, exc)

    # ------------------------------------------------------------- publish

    def publish(self, event: dict) -> None:
        """Queue one event for every watch client, without waiting; call from the loop.

        A watcher whose queue is full is disconnected. Raises TypeError or
        ValueError if the event is not JSON-serialisable (our own bug).
        """
        line = _encode(event)
        for watcher in list(self._watchers):
            try:
                watcher.queue.put_nowait(line)
            except asyncio.QueueFull:
                self._drop_watcher(watcher)

    def _drop_watcher(self, watcher: _Watcher) -> None:
        self._watchers.discard(watcher)
        watcher.dropped = True
        log.warning(
            "API watch client disconnected: %d events unread (watch_queue=%d)",
            watcher.queue.qsize(),
            self.watch_queue,
        )
        watcher.writer.transport.abort()

    # ---------------------------------------------------------- connections

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection's handler; nothing escapes it but cancellation."""
        if self._server is None:  # accepted just before close()
            writer.close()
            return
        uid = peer_uid(writer)
        client = Connection(uid, uid in self.reserved_uids, reader, writer, asyncio.current_task())
        refusal = self._admit(client)
        try:
            if refusal is not None:
                reason, message = refusal
                self.refused += 1
                if reason == "uid":
                    self.refused_per_uid += 1
                key = "uid:%s" % uid if reason == "uid" else "full"
                self._warn(key, "API: refusing connection from uid %s: %s", uid, message)
                await self._write(writer, _error_line(message))
            else:
                await self._serve(reader, writer, client)
        except (ConnectionError, asyncio.TimeoutError) as exc:
            log.debug("API client gone: %r", exc)
        except asyncio.CancelledError:
            # close() (the agent stops) or _replace() cancels the handler. Ending
            # normally, not cancelled: asyncio's streams (3.11) log a handler
            # task that ends cancelled as an ERROR with a traceback.
            log.debug("API: connection closed by the server")
        except Exception:
            log.warning("API connection handler failed", exc_info=True)
        finally:
            self._release(client)
            self._connections.discard(client.task)
            writer.close()

    def _admit(self, client: Connection):
        """Give client a request slot (None), or say why not ((reason, message)); never waits.

        A client that would be refused takes the slot of its uid's oldest
        connection that has sent no request yet, if there is one (and none
        is on its way: a burst of one uid's clients is not a held connection).
        """
        refusal = self._requests.refusal(client.uid, client.privileged)
        if refusal is not None:
            for old in self._fresh.get(client.uid, ()):  # oldest first
                if not request_waiting(old):
                    self._replace(old)
                    refusal = self._requests.refusal(client.uid, client.privileged)
                    break
        if refusal is not None:
            return refusal
        self._requests.take(client.uid, client.privileged)
        client.slot = "request"
        self._fresh.setdefault(client.uid, {})[client] = None
        self._connections.add(client.task)
        return None

    def _replace(self, old: Connection) -> None:
        """Close old (it sent no request) now, so that a new connection of its uid gets its slot."""
        self._release(old)
        self.replaced += 1
        self._warn("replaced:%s" % old.uid, "API: closed the oldest connection of uid %s that had sent "
                   "no request, for a new one of the same uid (no slot free)", old.uid)
        try:
            old.writer.write(_error_line("closed: another connection from uid %s needed the slot of this one, "
                                         "which had sent no request" % old.uid))
            old.writer.close()  # after that line
        except Exception:  # the transport may be closing already: the line is a courtesy
            pass
        # The handler may have its first line already (Python < 3.12's wait_for
        # then swallows the cancellation): _serve also sees the slot gone.
        old.task.cancel()

    def _release(self, client: Connection) -> None:
        """Give back whatever slot client holds (idempotent)."""
        if client.slot == "request":
            self._requests.give_back(client.uid, client.privileged)
            self._not_fresh(client)
        elif client.slot == "watch":
            self._watch_slots.give_back(client.uid, client.privileged)
        client.slot = None

    def _not_fresh(self, client: Connection) -> None:
        fresh = self._fresh.get(client.uid)
        if fresh is not None:
            fresh.pop(client, None)
            if not fresh:
                del self._fresh[client.uid]

    def _warn(self, key: str, message: str, *args) -> None:
        """A WARNING at most once a minute per key, the rest at DEBUG (agent/ratelimit.py)."""
        allowed, held = self._refusals.allow(key)
        if held:
            message += " (%d more since the last warning)" % held
        log.log(logging.WARNING if allowed else logging.DEBUG, message, *args)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: Connection) -> None:
        """Answer requests line by line until EOF, an oversized line, idleness or watch."""
        loop = asyncio.get_running_loop()
        # idle_timeout counts from the connection or the last request: blank
        # lines and bytes trickled without a newline do not extend it.
        deadline = None if self.idle_timeout is None else loop.time() + self.idle_timeout
        while True:
            last = False
            try:
                wait = None if deadline is None else max(0.0, deadline - loop.time())
                line = await asyncio.wait_for(reader.readuntil(b"\n"), wait)
            except asyncio.IncompleteReadError as exc:
                # EOF; a final line without its newline is still a request.
                line, last = exc.partial, True
            except (asyncio.LimitOverrunError, ValueError):
                log.debug("API: request longer than %d bytes", self.max_request_bytes)
                await self._write(
                    writer,
                    _error_line(
                        "request longer than %d bytes; closing the connection" % self.max_request_bytes
                    ),
                )
                return
            except asyncio.TimeoutError:
                if client.slot is None:  # replaced meanwhile
                    return
                self.idle_closed += 1
                log.debug("API: closing a connection from uid %s idle for %s s", client.uid, self.idle_timeout)
                await self._write(writer, _error_line(
                    "closed: no complete request within %g s" % self.idle_timeout))
                return
            if client.slot is None:  # replaced (_replace) while its first line came in
                return
            line = line.rstrip(b"\r\n")
            if line.strip():
                if not client.requested:  # no await since the line came: it cannot be replaced now
                    client.requested = True
                    self._not_fresh(client)
                try:
                    request = _parse_request(line)
                except _RequestError as exc:
                    log.debug("API: bad request %r: %s", line[:100], exc)
                    await self._write(writer, _error_line(str(exc)))
                else:
                    if request["cmd"] != "watch":
                        await self._write(writer, await self._answer(request))
                    elif await self._watch(reader, writer, client):
                        return  # streamed until a hangup: the connection is done
                if deadline is not None:
                    deadline = loop.time() + self.idle_timeout
            if last:
                return

    async def _answer(self, request: dict) -> bytes:
        """The encoded reply line to one parsed, non-watch request."""
        cmd = request["cmd"]
        try:
            if cmd == "version":
                result = {"version": agent_version()}
            elif cmd == "maintenance":
                on = request.get("on")
                if not isinstance(on, bool):
                    raise _RequestError('"on" must be true or false, got %s' % json.dumps(on))
                result = await self._call(self.provider.set_maintenance, on)
            elif cmd == "transfer":
                to = request.get("to")
                if to is not None and not isinstance(to, str):
                    raise _RequestError('"to" must be a node name or null, got %s' % _json_type(to))
                result = await self._call(self.provider.transfer, to)
            else:
                result = await self._call(getattr(self.provider, cmd))
        except (_RequestError, Refused) as exc:
            return _error_line(str(exc))
        except Exception as exc:
            return self._internal_error(cmd, exc)
        try:
            return _encode(_ok_reply(result))
        except (TypeError, ValueError) as exc:
            return self._internal_error(cmd, exc)

    @staticmethod
    def _internal_error(cmd: str, exc: Exception) -> bytes:
        log.warning("API: %s failed", cmd, exc_info=exc)
        return _error_line("internal error answering %s: %s: %s" % (cmd, type(exc).__name__, exc))

    @staticmethod
    async def _call(method, *args):
        result = method(*args)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def _watch(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: Connection) -> bool:
        """Stream the leader snapshot and published events until either side closes.

        False, after an error reply, if the snapshot could not be taken or no
        watcher slot is free; the connection then stays a request connection.
        """
        try:
            snapshot = {"event": "leader"}
            leader = await self._call(self.provider.leader)
            snapshot.update(leader)
            snapshot["event"] = "leader"
            snapshot_line = _encode(snapshot)
        except Exception as exc:
            log.warning("API: watch snapshot failed", exc_info=True)
            await self._write(writer, _error_line("internal error starting watch: %s" % exc))
            return False
        refusal = self._watch_slots.refusal(client.uid, client.privileged)
        if refusal is not None:
            self.watch_refused += 1
            key = "watch-uid:%s" % client.uid if refusal[0] == "uid" else "watch-full"
            self._warn(key, "API: refusing a watch from uid %s: %s",
                       client.uid, refusal[1])
            await self._write(writer, _error_line(refusal[1]))
            return False
        # The request slot becomes a watcher slot: watchers never crowd out requests.
        self._release(client)
        self._watch_slots.take(client.uid, client.privileged)
        client.slot = "watch"
        watcher = _Watcher(asyncio.Queue(self.watch_queue), writer)
        # No await between the snapshot and joining the watchers: every event
        # published from here on follows the snapshot in this client's queue.
        watcher.queue.put_nowait(snapshot_line)
        self._watchers.add(watcher)
        try:
            writer.write(_encode(_ok_reply({"watching": True})))
            pump = asyncio.ensure_future(self._pump(watcher))
            hangup = asyncio.ensure_future(self._wait_hangup(reader))
            try:
                done, _ = await asyncio.wait((pump, hangup), return_when=asyncio.FIRST_COMPLETED)
            finally:
                pump.cancel()
                hangup.cancel()
                await asyncio.gather(pump, hangup, return_exceptions=True)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()
        finally:
            self._watchers.discard(watcher)
        return True

    async def _pump(self, watcher: _Watcher) -> None:
        """Write queued event lines to the watcher, as fast as it reads them."""
        queue = watcher.queue
        while not watcher.dropped:
            lines = [await queue.get()]
            while not queue.empty():
                lines.append(queue.get_nowait())
            if watcher.dropped:
                return
            await self._write(watcher.writer, b"".join(lines))

    @staticmethod
    async def _wait_hangup(reader: asyncio.StreamReader) -> None:
        """Return when a watcher closes its end; anything it sends meanwhile is ignored."""
        while await reader.read(4096):
            pass

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await asyncio.wait_for(writer.drain(), self.write_timeout)
