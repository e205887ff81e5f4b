"""agent/api.py: a real ApiServer on a real UNIX socket, driven with raw JSON lines.

The provider is a fake (this is the unit test of one module); everything else
is real: sockets, files, modes. No sleeps as synchronisation: tests wait on
conditions with deadlines (wait_until) or on the peer's replies.
"""

import asyncio
import grp
import json
import logging
import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from agent.api import API_VERSION, ApiServer, ApiStartError, Refused, agent_version

DEADLINE_S = 5.0


class FakeProvider:
    """Answers like the daemon does, from plain attributes the tests can change."""

    def __init__(self):
        self.leader_state = {
            "leader": "pi-garage",
            "term": 7,
            "address": "192.168.1.10:7946",
            "self": "pi-kitchen",
            "is_leader": False,
            "insecure": False,
        }
        self.member_list = [
            {"name": "pi-garage", "address": "192.168.1.10:7946", "state": "alive",
             "priority": 200, "eligible": True, "incarnation": 3},
            {"name": "pi-kitchen", "address": "192.168.1.20:7946", "state": "alive",
             "priority": 150, "eligible": True, "incarnation": 1},
        ]
        self.transfers = []

    def leader(self):
        return dict(self.leader_state)

    def members(self):
        return {"members": [dict(m) for m in self.member_list]}

    def status(self):
        return {"node": "pi-kitchen", "cluster": "home", "members_alive": len(self.member_list)}

    def transfer(self, to):
        self.transfers.append(to)
        if to == "nobody":
            raise Refused("cannot transfer: nobody is not a member this node knows")
        return {"from": "pi-kitchen", "to": to or "pi-garage", "confirmed": True, "term": 8}


class BrokenProvider(FakeProvider):
    """A provider with bugs: the server must turn them into error replies."""

    def status(self):
        raise RuntimeError("status exploded")

    def members(self):
        return {"members": [object()]}  # not JSON-serialisable


class AsyncProvider(FakeProvider):
    """A provider whose methods are coroutines."""

    async def leader(self):
        await asyncio.sleep(0)
        return FakeProvider.leader(self)


def short_socket_dir(tmp_path: Path):
    """tmp_path, unless its socket path would pass AF_UNIX's 108-byte limit."""
    if len(str(tmp_path / "run" / "leaderd" / "leaderd.sock")) < 100:
        return tmp_path, None
    short = tempfile.mkdtemp(prefix="ld-")
    return Path(short), short


@pytest.fixture
def sock_dir(tmp_path):
    directory, cleanup = short_socket_dir(tmp_path)
    yield directory
    if cleanup:
        shutil.rmtree(cleanup, ignore_errors=True)


@pytest.fixture
def sock_path(sock_dir):
    return sock_dir / "leaderd.sock"


@pytest.fixture
async def make_server(sock_path):
    """A factory of started ApiServers (default path: sock_path), closed at teardown."""
    servers = []

    async def make(provider=None, path=None, **options):
        server = ApiServer(path or sock_path, provider or FakeProvider(), **options)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.close()


@pytest.fixture
async def server(make_server):
    return await make_server()


async def wait_until(condition, timeout=DEADLINE_S, what="condition"):
    """Poll condition() until true; fail with `what` after timeout seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            pytest.fail("timed out after %.1f s waiting for %s" % (timeout, what))
        await asyncio.sleep(0.002)


class Raw:
    """A raw API connection: bytes out, JSON lines in."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, path):
        reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 20)
        return cls(reader, writer)

    async def send(self, data: bytes):
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self) -> dict:
        line = await asyncio.wait_for(self.reader.readline(), DEADLINE_S)
        assert line.endswith(b"\n"), "connection closed; got %r" % line
        return json.loads(line)

    async def request(self, obj) -> dict:
        await self.send(json.dumps(obj).encode() + b"\n")
        return await self.recv()

    async def wait_closed_by_peer(self):
        """Read (and discard) until the server closes its end."""

        async def drain_to_eof():
            try:
                while await self.reader.read(65536):
                    pass
            except ConnectionResetError:
                pass  # Linux: the server closed with our unread bytes in its queue

        await asyncio.wait_for(drain_to_eof(), DEADLINE_S)

    def close(self):
        self.writer.close()


# ----------------------------------------------------------------- commands


async def test_leader_reply_has_envelope_and_provider_fields(server, sock_path):
    raw = await Raw.connect(sock_path)
    reply = await raw.request({"cmd": "leader"})
    assert reply == {"ok": True, "api": API_VERSION, **FakeProvider().leader()}
    assert list(reply)[:2] == ["ok", "api"]
    raw.close()


async def test_members_and_status(server, sock_path):
    raw = await Raw.connect(sock_path)
    members = await raw.request({"cmd": "members"})
    assert members["ok"] is True and members["api"] == 1
    assert [m["name"] for m in members["members"]] == ["pi-garage", "pi-kitchen"]
    status = await raw.request({"cmd": "status"})
    assert status == {"ok": True, "api": 1, "node": "pi-kitchen", "cluster": "home", "members_alive": 2}
    raw.close()


async def test_version(server, sock_path):
    raw = await Raw.connect(sock_path)
    reply = await raw.request({"cmd": "version"})
    assert reply == {"ok": True, "api": 1, "version": agent_version()}
    assert isinstance(reply["version"], str) and reply["version"]
    raw.close()


async def test_provider_cannot_override_envelope(make_server, sock_path):
    provider = FakeProvider()
    provider.leader_state["ok"] = False
    provider.leader_state["api"] = 99
    await make_server(provider)
    raw = await Raw.connect(sock_path)
    reply = await raw.request({"cmd": "leader"})
    assert reply["ok"] is True and reply["api"] == 1
    raw.close()


async def test_async_provider_methods(make_server, sock_path):
    await make_server(AsyncProvider())
    raw = await Raw.connect(sock_path)
    assert (await raw.request({"cmd": "leader"}))["leader"] == "pi-garage"
    raw.close()


async def test_transfer_passes_the_name_and_refusals_become_error_replies(make_server, sock_path):
    provider = FakeProvider()
    await make_server(provider)
    raw = await Raw.connect(sock_path)
    reply = await raw.request({"cmd": "transfer", "to": "pi-garage"})
    assert reply["ok"] is True and reply["to"] == "pi-garage" and provider.transfers == ["pi-garage"], reply
    reply = await raw.request({"cmd": "transfer"})
    assert reply["ok"] is True and provider.transfers[-1] is None, reply
    reply = await raw.request({"cmd": "transfer", "to": "nobody"})
    assert reply == {"ok": False, "api": 1, "error": "cannot transfer: nobody is not a member this node knows"}
    reply = await raw.request({"cmd": "transfer", "to": 7})
    assert reply["ok"] is False and reply["error"] == '"to" must be a node name or null, got number', reply
    assert provider.transfers == ["pi-garage", None, "nobody"]
    # The connection stays usable after the refusals.
    assert (await raw.request({"cmd": "version"}))["ok"] is True
    raw.close()


async def test_provider_bugs_become_error_replies(make_server, sock_path):
    await make_server(BrokenProvider())
    raw = await Raw.connect(sock_path)
    status = await raw.request({"cmd": "status"})
    assert status["ok"] is False and status["api"] == 1
    assert "status exploded" in status["error"]
    members = await raw.request({"cmd": "members"})
    assert members["ok"] is False and "internal error answering members" in members["error"]
    assert (await raw.request({"cmd": "leader"}))["ok"] is True
    raw.close()


# ------------------------------------------------------------- bad requests


GARBAGE = [
    (b"{", "malformed JSON"),
    (b"[]", "must be a JSON object"),
    (b"null", "must be a JSON object"),
    (b"\xff\xfe", "not valid UTF-8"),
    (b'{"cmd": 5}', '"cmd" must be a string'),
    (b'{"cmd": "nope"}', 'unknown cmd "nope"'),
    (b'{"to": "x"}', 'missing "cmd"'),
    (b'"leader"', "must be a JSON object"),
    (b"\xff\xfe{\x00\"\x00", "not valid UTF-8"),  # UTF-16 must not sneak through json.loads
]


@pytest.mark.parametrize("line, message", GARBAGE, ids=[repr(g[0]) for g in GARBAGE])
async def test_garbage_line_gets_error_and_connection_survives(server, sock_path, line, message):
    raw = await Raw.connect(sock_path)
    await raw.send(line + b"\n")
    reply = await raw.recv()
    assert reply["ok"] is False and reply["api"] == 1
    assert message in reply["error"]
    assert (await raw.request({"cmd": "leader"}))["leader"] == "pi-garage"
    raw.close()


async def test_all_garbage_on_one_connection_then_leader(server, sock_path):
    raw = await Raw.connect(sock_path)
    await raw.send(b"".join(line + b"\n" for line, _ in GARBAGE))
    for _, message in GARBAGE:
        reply = await raw.recv()
        assert reply["ok"] is False and message in reply["error"]
    assert (await raw.request({"cmd": "leader"}))["ok"] is True
    assert server.client_count == 1
    raw.close()


async def test_pipelined_requests_answered_in_order_and_blank_lines_ignored(server, sock_path):
    raw = await Raw.connect(sock_path)
    await raw.send(b'{"cmd": "version"}\r\n\n   \n{"cmd": "leader"}\n{"cmd": "members"}\n')
    assert "version" in await raw.recv()
    assert "leader" in await raw.recv()
    assert "members" in await raw.recv()
    raw.close()


async def test_last_line_without_newline_is_answered_at_eof(server, sock_path):
    raw = await Raw.connect(sock_path)
    await raw.send(b'{"cmd": "leader"}')
    raw.writer.write_eof()
    assert (await raw.recv())["leader"] == "pi-garage"
    await raw.wait_closed_by_peer()
    raw.close()


@pytest.mark.parametrize("newline", [True, False], ids=["with-newline", "no-newline"])
async def test_oversized_request_gets_error_and_server_keeps_serving(make_server, sock_path, newline):
    server = await make_server(max_request_bytes=256)
    other = await Raw.connect(sock_path)
    raw = await Raw.connect(sock_path)
    await raw.send(b'{"cmd": "leader", "pad": "' + b"x" * 5000 + b'"}' + (b"\n" if newline else b""))
    reply = await raw.recv()
    assert reply == {"ok": False, "api": 1, "error": "request longer than 256 bytes; closing the connection"}
    await raw.wait_closed_by_peer()
    raw.close()
    assert (await other.request({"cmd": "leader"}))["ok"] is True
    fresh = await Raw.connect(sock_path)
    assert (await fresh.request({"cmd": "status"}))["ok"] is True
    await wait_until(lambda: server.client_count == 2, what="the oversized connection to be dropped")
    other.close()
    fresh.close()


async def test_request_of_exactly_the_limit_is_accepted(make_server, sock_path):
    await make_server(max_request_bytes=256)
    line = b'{"cmd": "leader", "pad": "'
    line += b"x" * (256 - len(line) - 2) + b'"}'
    assert len(line) == 256
    raw = await Raw.connect(sock_path)
    await raw.send(line + b"\n")
    assert (await raw.recv())["ok"] is True
    raw.close()


async def test_idle_connection_is_closed(make_server, sock_path):
    server = await make_server(idle_timeout=0.05)
    raw = await Raw.connect(sock_path)
    await raw.wait_closed_by_peer()
    await wait_until(lambda: server.client_count == 0, what="idle client to be dropped")
    raw.close()


async def test_max_clients(make_server, sock_path):
    server = await make_server(max_clients=2)
    first = await Raw.connect(sock_path)
    second = await Raw.connect(sock_path)
    assert (await first.request({"cmd": "leader"}))["ok"] is True
    assert (await second.request({"cmd": "leader"}))["ok"] is True
    assert server.client_count == 2

    third = await Raw.connect(sock_path)
    reply = await third.recv()
    assert reply["ok"] is False and reply["api"] == 1
    assert "too many clients (max 2)" in reply["error"]
    await third.wait_closed_by_peer()
    third.close()

    first.close()
    await wait_until(lambda: server.client_count == 1, what="first client to go")
    fourth = await Raw.connect(sock_path)
    assert (await fourth.request({"cmd": "leader"}))["ok"] is True
    assert (await second.request({"cmd": "members"}))["ok"] is True
    second.close()
    fourth.close()



async def test_refused_connections_are_logged_at_most_once_a_minute(make_server, sock_path, caplog):
    server = await make_server(max_clients=1)
    holder = await Raw.connect(sock_path)
    assert (await holder.request({"cmd": "leader"}))["ok"] is True
    for _ in range(5):
        refused = await Raw.connect(sock_path)
        assert "too many clients" in (await refused.recv())["error"]
        await refused.wait_closed_by_peer()
        refused.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "refusing connection" in warnings[0], warnings
    assert server.refused == 5
    holder.close()


# -------------------------------------------------------------------- watch


async def start_watch(path) -> Raw:
    raw = await Raw.connect(path)
    assert await raw.request({"cmd": "watch"}) == {"ok": True, "api": 1, "watching": True}
    return raw


async def test_watch_starts_with_leader_snapshot_then_events_in_order(server, sock_path):
    raw = await start_watch(sock_path)
    assert server.watcher_count == 1
    snapshot = await raw.recv()
    assert snapshot == {"event": "leader", **FakeProvider().leader()}

    events = [{"event": "member", "name": "n%d" % i, "state": "alive"} for i in range(200)]
    for event in events:
        server.publish(event)
    assert [await raw.recv() for _ in events] == events
    raw.close()
    await wait_until(lambda: server.watcher_count == 0, what="watcher to be forgotten on hangup")
    await wait_until(lambda: server.client_count == 0, what="connection to be closed")


async def test_every_watcher_gets_every_event(server, sock_path):
    watchers = [await start_watch(sock_path) for _ in range(3)]
    for raw in watchers:
        assert (await raw.recv())["event"] == "leader"
    server.publish({"event": "leader", "leader": "pi-kitchen", "term": 8})
    server.publish({"event": "member", "name": "pi-garage", "state": "dead"})
    for raw in watchers:
        assert (await raw.recv())["term"] == 8
        assert (await raw.recv())["state"] == "dead"
        raw.close()


async def test_publish_without_watchers_is_a_no_op(server):
    assert server.publish({"event": "leader", "leader": None}) is None


async def test_publish_rejects_non_json_events(server):
    with pytest.raises(TypeError):
        server.publish({"event": "bad", "value": object()})


async def test_watch_hangup_is_noticed_without_any_publish(server, sock_path):
    raw = await start_watch(sock_path)
    raw.close()
    await wait_until(lambda: server.watcher_count == 0 and server.client_count == 0,
                     what="closed watcher to be dropped")


async def test_burst_larger_than_queue_drops_the_watcher_and_publish_never_waits(make_server, sock_path):
    server = await make_server(watch_queue=8)
    raw = await start_watch(sock_path)
    # One synchronous burst: the loop never runs in between, so no pump can
    # drain the queue; publish() is a plain function and must simply return.
    results = [server.publish({"event": "tick", "n": n}) for n in range(1000)]
    assert results == [None] * 1000
    assert server.watcher_count == 0
    # The client may read what was queued before the drop, then sees the end.
    await raw.wait_closed_by_peer()
    raw.close()
    await wait_until(lambda: server.client_count == 0, what="dropped watcher's connection to close")
    fresh = await Raw.connect(sock_path)
    assert (await fresh.request({"cmd": "leader"}))["ok"] is True
    fresh.close()


async def test_watcher_that_never_reads_is_dropped_others_keep_everything(make_server, sock_path):
    # Events big enough to fill the stuck client's kernel and transport
    # buffers; then its bounded queue fills and it is dropped (the write
    # timeout is long, so the queue is what must do it).
    server = await make_server(watch_queue=16, write_timeout=60.0)
    stuck = await start_watch(sock_path)  # reads the ack, then never again
    healthy = await start_watch(sock_path)
    received = []

    async def read_healthy():
        while True:
            received.append(await healthy.recv())

    reader = asyncio.ensure_future(read_healthy())
    payload = "x" * 16384
    try:
        await wait_until(lambda: len(received) == 1, what="healthy snapshot")
        for n in range(5000):
            assert server.publish({"event": "blob", "n": n, "payload": payload}) is None
            await wait_until(lambda: len(received) == n + 2, what="healthy watcher to get event %d" % n)
            if server.watcher_count == 1:
                break
        assert server.watcher_count == 1, "stuck watcher was never disconnected"
        assert n < 4999
    finally:
        reader.cancel()
    assert [e["n"] for e in received[1:]] == list(range(n + 1))
    await stuck.wait_closed_by_peer()
    stuck.close()
    healthy.close()


async def test_watcher_that_stops_reading_is_dropped_by_write_timeout(make_server, sock_path):
    server = await make_server(watch_queue=100_000, write_timeout=0.1)
    raw = await start_watch(sock_path)
    payload = "x" * 65536
    for n in range(200):  # ~13 MB: more than socket and transport buffers hold
        server.publish({"event": "blob", "n": n, "payload": payload})
        await asyncio.sleep(0)
        if server.watcher_count == 0:
            break
    await wait_until(lambda: server.watcher_count == 0, what="write timeout to drop the watcher")
    await raw.wait_closed_by_peer()
    raw.close()


async def test_watch_snapshot_failure_is_an_error_reply(make_server, sock_path):
    class NoLeader(FakeProvider):
        def leader(self):
            raise RuntimeError("no state yet")

    server = await make_server(NoLeader())
    raw = await Raw.connect(sock_path)
    reply = await raw.request({"cmd": "watch"})
    assert reply["ok"] is False and "no state yet" in reply["error"]
    assert server.watcher_count == 0
    assert (await raw.request({"cmd": "members"}))["ok"] is True
    raw.close()


# ----------------------------------------------------- socket file lifecycle


async def test_socket_mode_defaults_to_0660(server, sock_path):
    assert stat.S_ISSOCK(os.stat(sock_path).st_mode)
    assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o660


@pytest.mark.parametrize("mode, expected", [(0o600, 0o600), ("0640", 0o640), (0o666, 0o666)])
async def test_socket_mode_as_configured(make_server, sock_path, mode, expected):
    await make_server(mode=mode)
    assert stat.S_IMODE(os.stat(sock_path).st_mode) == expected


@pytest.mark.parametrize("by", ["gid", "gid-string", "name"])
async def test_socket_group(make_server, sock_path, by):
    gid = os.getgid()
    group = {"gid": gid, "gid-string": str(gid), "name": grp.getgrgid(gid).gr_name}[by]
    await make_server(group=group)
    assert os.stat(sock_path).st_gid == gid


async def test_unknown_group_refuses_to_start_and_leaves_no_socket(sock_path):
    server = ApiServer(sock_path, FakeProvider(), group="no-such-group-leaderd")
    with pytest.raises(ApiStartError, match="no-such-group-leaderd"):
        await server.start()
    assert not os.path.exists(sock_path)


async def test_missing_parent_directory_is_created_0755(make_server, sock_dir):
    path = sock_dir / "run" / "leaderd" / "leaderd.sock"
    await make_server(path=path)
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o755
    raw = await Raw.connect(path)
    assert (await raw.request({"cmd": "leader"}))["ok"] is True
    raw.close()


async def test_close_removes_socket_and_disconnects_clients(sock_path):
    server = ApiServer(sock_path, FakeProvider())
    await server.start()
    watcher = await start_watch(sock_path)
    plain = await Raw.connect(sock_path)
    assert (await plain.request({"cmd": "leader"}))["ok"] is True
    await server.close()
    assert not os.path.exists(sock_path)
    assert server.client_count == 0 and server.watcher_count == 0
    await watcher.wait_closed_by_peer()
    await plain.wait_closed_by_peer()
    watcher.close()
    plain.close()
    await server.close()  # idempotent



async def test_close_with_watchers_logs_no_error_and_no_traceback(sock_path, caplog):
    loop = asyncio.get_running_loop()
    reported = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        server = ApiServer(sock_path, FakeProvider())
        await server.start()
        watchers = [await start_watch(sock_path) for _ in range(3)]
        for watcher in watchers:
            await watcher.recv()  # the snapshot
        await server.close()
        for watcher in watchers:
            await watcher.wait_closed_by_peer()
            watcher.close()
        # A callback failing after the close would have been reported by now:
        # the handlers' done callbacks run before close()'s gather returns.
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert reported == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text


async def test_stale_socket_file_is_replaced(make_server, sock_path):
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(sock_path))
    dead.close()  # the file stays, nobody listens: a crashed agent's leftover
    assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
    await make_server()
    raw = await Raw.connect(sock_path)
    assert (await raw.request({"cmd": "leader"}))["ok"] is True
    raw.close()


async def test_live_socket_is_not_stolen(make_server, sock_path):
    first = await make_server()
    second = ApiServer(sock_path, FakeProvider())
    with pytest.raises(ApiStartError, match="already serving on"):
        await second.start()
    raw = await Raw.connect(sock_path)
    assert (await raw.request({"cmd": "leader"}))["ok"] is True
    raw.close()
    await wait_until(lambda: first.client_count == 0, what="the probe and the client to be gone")


async def test_non_socket_file_is_not_replaced(sock_path):
    sock_path.write_text("precious")
    server = ApiServer(sock_path, FakeProvider())
    with pytest.raises(ApiStartError, match="not a socket"):
        await server.start()
    assert sock_path.read_text() == "precious"


async def test_close_leaves_a_successors_socket_alone(make_server, sock_path):
    old = await make_server()
    os.unlink(sock_path)  # e.g. an operator cleaned up, and a new agent started
    await make_server()
    await old.close()
    assert os.path.exists(sock_path)
    raw = await Raw.connect(sock_path)
    assert (await raw.request({"cmd": "leader"}))["ok"] is True
    raw.close()


def test_invalid_options_raise():
    for options in ({"max_clients": 0}, {"watch_queue": 1}, {"max_request_bytes": 10}):
        with pytest.raises(ValueError):
            ApiServer("/tmp/x.sock", FakeProvider(), **options)


async def test_bad_mode_refuses_to_start(sock_path):
    with pytest.raises(ApiStartError, match="mode"):
        await ApiServer(sock_path, FakeProvider(), mode="rw-rw----").start()
    assert not os.path.exists(sock_path)
    # A mode out of range is written in octal, as configs write it, not as the decimal int.
    with pytest.raises(ApiStartError, match='api mode 1660: expected permissions between "0000" and "0777"'):
        await ApiServer(sock_path, FakeProvider(), mode=0o1660).start()
    assert not os.path.exists(sock_path)
