"""agent/client.py against a real ApiServer (and a few hand-made bad servers) on real sockets.

The synchronous Client runs in a worker thread (asyncio.to_thread) while the
server runs on the test's event loop.
"""

import asyncio
import os
import socket

import pytest

from agent.client import (
    SYSTEM_SOCKET_PATH,
    AgentTimeout,
    AgentUnreachable,
    ApiError,
    AsyncClient,
    Client,
    ClientError,
    _unreachable,
    default_socket_path,
)
from test_api import BrokenProvider, FakeProvider, make_server, server, sock_dir, sock_path, wait_until  # noqa: F401

LEADER = FakeProvider().leader()


@pytest.fixture
async def canned_server(sock_path):
    """Start a fake agent that answers every request line with `reply` (None: never answers)."""
    servers = []

    async def start(reply, close_after=False):
        async def handle(reader, writer):
            try:
                while await reader.readline():
                    if reply is not None:
                        writer.write(reply)
                        await writer.drain()
                    if close_after:
                        break
                    if reply is None:
                        await reader.read()  # hold the connection open, unanswered
            except ConnectionError:
                pass
            finally:
                writer.close()

        srv = await asyncio.start_unix_server(handle, path=str(sock_path))
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.close()


# ----------------------------------------------------------- sync and async


async def test_sync_client_commands(server, sock_path):
    client = Client(sock_path)
    assert await asyncio.to_thread(client.leader) == LEADER
    members = await asyncio.to_thread(client.members)
    assert [m["name"] for m in members["members"]] == ["pi-garage", "pi-kitchen"]
    assert (await asyncio.to_thread(client.status))["cluster"] == "home"
    version = await asyncio.to_thread(client.version)
    assert set(version) == {"version"} and version["version"]


async def test_async_client_commands(server, sock_path):
    client = AsyncClient(sock_path)
    assert await client.leader() == LEADER
    assert len((await client.members())["members"]) == 2
    assert (await client.status())["node"] == "pi-kitchen"
    assert (await client.version())["version"]


async def test_error_reply_raises_api_error(make_server, sock_path):
    # BrokenProvider.status raises: the agent answers with an error reply.
    await make_server(BrokenProvider())
    with pytest.raises(ApiError, match="status exploded"):
        await asyncio.to_thread(Client(sock_path).status)
    with pytest.raises(ApiError, match="status exploded"):
        await AsyncClient(sock_path).status()
    assert await AsyncClient(sock_path).leader() == LEADER  # the agent is unharmed


async def test_sync_watch_yields_snapshot_then_events(server, sock_path):
    events = [{"event": "leader", "leader": "pi-kitchen", "term": 8 + i} for i in range(3)]

    def collect(count):
        seen = []
        for event in Client(sock_path).watch():
            seen.append(event)
            if len(seen) == count:
                break  # closes the generator, hence the connection
        return seen

    watching = asyncio.ensure_future(asyncio.to_thread(collect, 1 + len(events)))
    await wait_until(lambda: server.watcher_count == 1, what="sync watcher to subscribe")
    for event in events:
        server.publish(event)
    seen = await asyncio.wait_for(watching, 5)
    assert seen == [{"event": "leader", **LEADER}] + events
    await wait_until(lambda: server.watcher_count == 0, what="sync watcher to hang up")


async def test_async_watch_yields_snapshot_then_events(server, sock_path):
    stream = AsyncClient(sock_path).watch()
    first = await asyncio.wait_for(stream.__anext__(), 5)
    assert first == {"event": "leader", **LEADER}
    assert server.watcher_count == 1
    server.publish({"event": "member", "name": "pi-garage", "state": "suspect"})
    server.publish({"event": "member", "name": "pi-garage", "state": "dead"})
    states = [(await asyncio.wait_for(stream.__anext__(), 5))["state"] for _ in range(2)]
    assert states == ["suspect", "dead"]
    await stream.aclose()
    await wait_until(lambda: server.watcher_count == 0, what="async watcher to hang up")


async def test_watch_raises_when_agent_stops(make_server, sock_path):
    server = await make_server()
    stream = AsyncClient(sock_path).watch()
    await asyncio.wait_for(stream.__anext__(), 5)
    await server.close()
    with pytest.raises(AgentUnreachable, match="watch stream from .* ended"):
        await asyncio.wait_for(stream.__anext__(), 5)


async def test_too_many_clients_surfaces_as_api_error(make_server, sock_path):
    server = await make_server(max_clients=1)
    # A connection that has asked something holds the only request slot
    # (a watcher would not: watchers have a budget of their own).
    reader, writer = await asyncio.open_unix_connection(str(sock_path))
    writer.write(b'{"cmd": "leader"}\n')
    assert b'"ok": true' in await asyncio.wait_for(reader.readline(), 5)
    with pytest.raises(ApiError, match="too many clients"):
        await AsyncClient(sock_path).leader()
    with pytest.raises(ApiError, match="too many clients"):
        await asyncio.to_thread(Client(sock_path).leader)
    writer.close()
    await wait_until(lambda: server.client_count == 0, what="the holder to hang up")
    assert await AsyncClient(sock_path).leader() == LEADER


# -------------------------------------------------------------- unreachable


async def test_missing_socket_is_agent_unreachable(sock_dir):
    path = str(sock_dir / "nowhere.sock")
    with pytest.raises(AgentUnreachable, match="is leaderd running") as sync_error:
        Client(path).leader()
    assert path in str(sync_error.value)
    with pytest.raises(AgentUnreachable, match="is leaderd running") as async_error:
        await AsyncClient(path).status()
    assert path in str(async_error.value)
    with pytest.raises(AgentUnreachable, match=path):
        next(Client(path).watch())
    with pytest.raises(AgentUnreachable, match=path):
        await AsyncClient(path).watch().__anext__()


async def test_stale_socket_file_is_agent_unreachable(sock_path):
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(sock_path))
    dead.close()
    with pytest.raises(AgentUnreachable, match="not running"):
        Client(sock_path).leader()
    with pytest.raises(AgentUnreachable, match="not running"):
        await AsyncClient(sock_path).leader()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores socket permissions")
async def test_permission_denied_is_agent_unreachable(make_server, sock_path):
    await make_server(mode=0o000)
    with pytest.raises(AgentUnreachable, match="permission denied"):
        Client(sock_path).leader()


@pytest.mark.parametrize(
    "exc, words",
    [
        (FileNotFoundError(2, "No such file"), "is leaderd running"),
        (ConnectionRefusedError(111, "Connection refused"), "not running"),
        (PermissionError(13, "Permission denied"), "permission denied"),
        (socket.timeout("timed out"), "did not accept"),
        (OSError(22, "Invalid argument"), "cannot connect"),
    ],
)
def test_connect_errors_name_the_path_and_the_cause(exc, words):
    error = _unreachable("/run/leaderd/leaderd.sock", exc)
    assert isinstance(error, AgentUnreachable) and isinstance(error, ClientError)
    assert "/run/leaderd/leaderd.sock" in str(error) and words in str(error)


# ------------------------------------------------------------- bad agents


@pytest.mark.parametrize("reply", [b'{"ok": true, "api": 2, "leader": "x"}\n', b'{"ok": true, "leader": "x"}\n'])
async def test_api_version_mismatch_is_api_error(canned_server, sock_path, reply):
    await canned_server(reply)
    with pytest.raises(ApiError, match="API version"):
        await asyncio.to_thread(Client(sock_path).leader)
    with pytest.raises(ApiError, match="API version"):
        await AsyncClient(sock_path).leader()
    with pytest.raises(ApiError, match="API version"):
        await AsyncClient(sock_path).watch().__anext__()


@pytest.mark.parametrize("reply", [b"not json\n", b"[1, 2]\n", b"\xff\n"])
async def test_malformed_reply_is_api_error(canned_server, sock_path, reply):
    await canned_server(reply)
    with pytest.raises(ApiError, match="malformed reply"):
        await asyncio.to_thread(Client(sock_path).members)
    with pytest.raises(ApiError, match="malformed reply"):
        await AsyncClient(sock_path).members()


async def test_silent_agent_times_out(canned_server, sock_path):
    await canned_server(None)
    with pytest.raises(AgentTimeout, match="in time"):
        await asyncio.to_thread(Client(sock_path, timeout=0.2).leader)
    with pytest.raises(AgentTimeout, match="in time"):
        await AsyncClient(sock_path, timeout=0.2).leader()


async def test_agent_hanging_up_without_reply_is_unreachable(canned_server, sock_path):
    await canned_server(b"", close_after=True)
    with pytest.raises(AgentUnreachable, match="closed the connection"):
        await asyncio.to_thread(Client(sock_path).leader)
    with pytest.raises(AgentUnreachable, match="closed the connection"):
        await AsyncClient(sock_path).leader()


# ------------------------------------------------------- default socket path


def test_default_socket_path_prefers_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LEADERD_SOCKET", "/tmp/custom.sock")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_socket_path() == "/tmp/custom.sock"


def test_default_socket_path_uses_runtime_dir_when_socket_exists(monkeypatch, tmp_path):
    monkeypatch.delenv("LEADERD_SOCKET", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_socket_path() == SYSTEM_SOCKET_PATH == "/run/leaderd/leaderd.sock"
    (tmp_path / "leaderd").mkdir()
    (tmp_path / "leaderd" / "leaderd.sock").touch()
    assert default_socket_path() == str(tmp_path / "leaderd" / "leaderd.sock")


def test_default_socket_path_falls_back_to_run(monkeypatch):
    monkeypatch.delenv("LEADERD_SOCKET", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert default_socket_path() == "/run/leaderd/leaderd.sock"
    assert Client().path == "/run/leaderd/leaderd.sock"
    assert AsyncClient(timeout=1).path == "/run/leaderd/leaderd.sock"


def test_server_and_client_agree_on_the_protocol_version():
    import agent.api
    import agent.client

    assert agent.client.API_VERSION == agent.api.API_VERSION == 1


def _connect_until_full(path, limit):
    """Non-blocking connections to path until its listen queue refuses one (at most limit): the list."""
    queued = []
    for _ in range(limit):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(str(path))
        except BlockingIOError:
            sock.close()
            return queued
        queued.append(sock)
    raise AssertionError("the listen queue of %s never filled" % path)


def _fill_listen_queue(path):
    """A listener that never accepts, its queue filled: (listener, queued client sockets)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(0)
    return listener, _connect_until_full(path, 64)  # Linux queues backlog + 1


def test_full_listen_queue_is_retried_until_the_timeout(sock_path):
    # Linux fails a UNIX connect at once while the listen queue is full; the
    # client retries until its deadline and then says why, rather than
    # failing at once with "Resource temporarily unavailable".
    listener, queued = _fill_listen_queue(sock_path)
    try:
        with pytest.raises(AgentTimeout) as info:
            Client(sock_path, timeout=0.3).leader()
        assert "listen queue" in str(info.value) and str(sock_path) in str(info.value)
    finally:
        for sock in queued:
            sock.close()
        listener.close()


async def test_full_listen_queue_then_room_connects(server, sock_path):
    # The agent's queue is full for a moment (a flood), then drains: the
    # client gets in within its timeout and gets its answer.
    client = Client(sock_path, timeout=5)
    flood = _connect_until_full(sock_path, 512)
    try:
        call = asyncio.ensure_future(asyncio.to_thread(client.leader))
        for sock in flood:  # the flood goes away; the server can accept again
            sock.close()
        assert await call == LEADER
    finally:
        for sock in flood:
            sock.close()
