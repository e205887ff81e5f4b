"""The local API can't be locked out (issue 11, item 4): budgets, reserve, per-uid caps, idle timeout.

Two layers, both on real UNIX sockets:
- a real ApiServer in the test's event loop (fixtures from test_api.py),
  driven with raw connections and agent.client, for each limit alone;
- one real agent (`leaderd run`, agent/localcluster.py) held down by a
  holder process (bench/api_lockout.py's `hold`: 200 idle connections, or
  64 watchers), while `leaderd is-leader` and agent.client ask it who leads.
As root (CI), holders also run as another user (nobody, 65534) to show the
reserve and the per-uid caps across uids. No sleeps as synchronisation: every
wait has a deadline and a condition (a reply, a report line, a counter).
"""

import asyncio
import importlib.util
import json
import logging
import os
import shutil
import socket
import tempfile

import pytest

from agent.api import MAX_CLIENTS, MAX_WATCHERS, ApiServer
from agent.client import AsyncClient, Client
from daemon_harness import Cluster, run_cli
from test_api import DEADLINE_S, FakeProvider, Raw, make_server, sock_dir, sock_path, wait_until  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOLD_SCRIPT = os.path.join(ROOT, "bench", "api_lockout.py")
_spec = importlib.util.spec_from_file_location("api_lockout", HOLD_SCRIPT)
api_lockout = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(api_lockout)

NOBODY = 65534
AS_ROOT = os.geteuid() == 0
# Only root can start a process as another uid; CI runs as root, so these run there.
needs_root = pytest.mark.skipif(not AS_ROOT, reason="holding connections as another uid needs root")
OWN_UID = os.geteuid()
SETTLE_S = 30


def shared_dir(prefix):
    """A new directory another uid can reach sockets in (0755), for a socket of mode 0666."""
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(path, 0o755)
    return path


# --- One ApiServer: each limit alone ---------------------------------------------------


async def connect_and_ask(path) -> Raw:
    """A connection that has sent a request (so it is a client, not an idle connection) and stays open."""
    raw = await Raw.connect(path)
    assert (await raw.request({"cmd": "leader"}))["ok"] is True
    return raw


async def refused_reply(path) -> dict:
    """The one error line a refused connection gets before the server closes it."""
    raw = await Raw.connect(path)
    reply = await raw.recv()
    await raw.wait_closed_by_peer()
    raw.close()
    assert reply["ok"] is False and reply["api"] == 1, reply
    return reply


async def test_per_uid_cap_refuses_the_excess_with_an_error_reply(make_server, sock_path):
    # reserved_uids=(): this test's uid is an ordinary one, capped like any other.
    server = await make_server(reserved_uids=(), max_clients=8, max_clients_per_uid=3)
    held = [await connect_and_ask(sock_path) for _ in range(3)]
    reply = await refused_reply(sock_path)
    assert reply["error"] == "too many clients from uid %d (max 3 per uid); try again later" % OWN_UID
    counters = server.counters()
    assert counters["api_refused"] == 1 and counters["api_refused_per_uid"] == 1, counters
    # The held ones keep working, and one gone makes room again.
    assert (await held[0].request({"cmd": "status"}))["ok"] is True
    held.pop().close()
    await wait_until(lambda: server.request_count == 2, what="a held connection to go")
    assert (await AsyncClient(sock_path).leader())["leader"] == "pi-garage"
    for raw in held:
        raw.close()


async def test_a_uids_new_connection_replaces_its_oldest_idle_one(make_server, sock_path):
    server = await make_server(reserved_uids=(), max_clients=8, max_clients_per_uid=3)
    idle = [await Raw.connect(sock_path) for _ in range(3)]
    await wait_until(lambda: server.request_count == 3, what="three idle connections admitted")
    # The uid is at its cap with connections that never asked anything: a
    # new one of the same uid is served, and the oldest idle one is closed, with a reason.
    assert (await AsyncClient(sock_path).leader())["term"] == 7
    reply = await idle[0].recv()
    assert reply["ok"] is False
    assert reply["error"].startswith("closed: another connection from uid %d needed the slot" % OWN_UID)
    await idle[0].wait_closed_by_peer()
    assert server.counters()["api_replaced"] == 1
    for raw in idle[1:]:  # the younger ones are untouched
        assert (await raw.request({"cmd": "leader"}))["ok"] is True
    for raw in idle:
        raw.close()


async def test_a_connection_that_asked_something_is_never_replaced(make_server, sock_path):
    server = await make_server(reserved_uids=(), max_clients=8, max_clients_per_uid=2)
    clients = [await connect_and_ask(sock_path) for _ in range(2)]
    reply = await refused_reply(sock_path)
    assert "max 2 per uid" in reply["error"]
    assert server.counters()["api_replaced"] == 0
    for raw in clients:
        assert (await raw.request({"cmd": "members"}))["ok"] is True
        raw.close()


async def test_a_burst_past_a_uids_share_is_refused_not_replaced(make_server, sock_path):
    server = await make_server(reserved_uids=(), max_clients=8, max_clients_per_uid=2)
    # Four clients connect and send their request before the server runs at
    # all (no await in between): it accepts them in one batch, each with its
    # request waiting. Two are served; two are refused; none replaces another.
    socks = []
    for _ in range(4):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(sock_path))
        sock.sendall(b'{"cmd": "leader"}\n')
        socks.append(sock)
    replies = []
    for sock in socks:
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        replies.append(json.loads(await asyncio.wait_for(reader.readline(), DEADLINE_S)))
        writer.close()
    errors = sorted(r.get("error", "") for r in replies)
    assert [r["ok"] for r in replies].count(True) == 2, replies
    assert errors[2:] == ["too many clients from uid %d (max 2 per uid); try again later" % OWN_UID] * 2, replies
    assert server.counters()["api_replaced"] == 0


async def test_refusals_warn_once_a_minute_per_uid(make_server, sock_path, caplog):
    server = await make_server(reserved_uids=(), max_clients=8, max_clients_per_uid=1)
    held = await connect_and_ask(sock_path)
    for _ in range(4):
        await refused_reply(sock_path)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("API: refusing connection from uid %d: too many clients from uid" % OWN_UID)
    assert server.counters()["api_refused_per_uid"] == 4
    held.close()


async def test_watchers_have_a_budget_of_their_own(make_server, sock_path):
    server = await make_server(max_clients=2, max_watchers=3, reserved_watchers=0)
    watchers = []
    for _ in range(3):
        raw = await Raw.connect(sock_path)
        assert (await raw.request({"cmd": "watch"}))["watching"] is True
        assert (await raw.recv())["event"] == "leader"
        watchers.append(raw)
    assert server.watcher_count == 3 and server.request_count == 0
    # Three watchers and both request slots still free: two clients at once.
    clients = [await connect_and_ask(sock_path) for _ in range(2)]
    for raw in clients:
        raw.close()
    await wait_until(lambda: server.request_count == 0, what="the clients to go")
    # A fourth watch is refused with an error line; the connection stays a usable request connection.
    extra = await Raw.connect(sock_path)
    reply = await extra.request({"cmd": "watch"})
    assert reply == {"ok": False, "api": 1, "error": "too many watchers (max 3); try again later"}
    assert (await extra.request({"cmd": "leader"}))["ok"] is True
    assert server.counters()["api_watch_refused"] == 1
    extra.close()
    server.publish({"event": "leader_changed", "term": 8})
    for raw in watchers:
        assert (await raw.recv())["term"] == 8
        raw.close()


async def test_per_uid_cap_on_watchers(make_server, sock_path):
    server = await make_server(reserved_uids=(), max_watchers=8, max_watchers_per_uid=2)
    watchers = []
    for _ in range(2):
        raw = await Raw.connect(sock_path)
        assert (await raw.request({"cmd": "watch"}))["watching"] is True
        watchers.append(raw)
    extra = await Raw.connect(sock_path)
    reply = await extra.request({"cmd": "watch"})
    assert reply["error"] == "too many watchers from uid %d (max 2 per uid); try again later" % OWN_UID
    assert server.watcher_count == 2
    for raw in watchers + [extra]:
        raw.close()


async def test_reserved_slots_are_kept_for_the_agents_own_uid(make_server, sock_dir):
    # The same limits twice: this uid as an ordinary one, then as the agent's own.
    limits = {"max_clients": 4, "reserved_clients": 2, "max_clients_per_uid": 4}
    ordinary_path = sock_dir / "ordinary.sock"
    await make_server(path=ordinary_path, reserved_uids=(), **limits)
    held = [await connect_and_ask(ordinary_path) for _ in range(2)]
    reply = await refused_reply(ordinary_path)
    assert reply["error"] == ("too many clients (max 4, of which 2 are kept for root and the agent's uid); "
                              "try again later")
    own_path = sock_dir / "own.sock"
    own = await make_server(path=own_path, **limits)  # reserved_uids: root and this process's uid
    assert OWN_UID in own.reserved_uids
    held += [await connect_and_ask(own_path) for _ in range(4)]
    reply = await refused_reply(own_path)
    assert reply["error"] == "too many clients (max 4); try again later"
    for raw in held:
        raw.close()


async def test_idle_request_connections_are_closed_after_the_timeout(make_server, sock_path):
    server = await make_server(idle_timeout=0.2)
    silent = await Raw.connect(sock_path)
    partial = await Raw.connect(sock_path)
    await partial.send(b'{"cmd": "lea')  # a request that never ends
    asked = await connect_and_ask(sock_path)  # then idle between requests
    for raw in (silent, partial, asked):
        reply = await raw.recv()
        assert reply == {"ok": False, "api": 1, "error": "closed: no complete request within 0.2 s"}
        await raw.wait_closed_by_peer()
        raw.close()
    await wait_until(lambda: server.counters()["api_idle_closed"] == 3, what="three idle closes counted")
    assert server.request_count == 0
    # A watcher is not a request connection: no idle timeout.
    watcher = await Raw.connect(sock_path)
    assert (await watcher.request({"cmd": "watch"}))["watching"] is True
    assert (await watcher.recv())["event"] == "leader"
    probe = await Raw.connect(sock_path)  # closed by the timeout, while the watcher stays
    assert "no complete request" in (await probe.recv())["error"]
    probe.close()
    server.publish({"event": "leader_changed", "term": 9})
    assert (await watcher.recv())["term"] == 9
    watcher.close()


def test_default_limits_and_their_checks():
    server = ApiServer("/nonexistent/leaderd.sock", FakeProvider())
    assert (server.max_clients, server.max_watchers, server.idle_timeout) == (64, 128, 2.0)
    assert server.reserved_uids == frozenset((0, os.geteuid()))
    for options in ({"max_watchers": 0}, {"max_clients": 4, "reserved_clients": 4},
                    {"reserved_watchers": -1}, {"max_clients_per_uid": 0}, {"max_watchers_per_uid": 0}):
        with pytest.raises(ValueError):
            ApiServer("/nonexistent/leaderd.sock", FakeProvider(), **options)


class AsyncHolder:
    """bench/api_lockout.py's `hold` as another uid, next to a server on this event loop."""

    @classmethod
    async def start(cls, path, mode, count, uid, keep=0):
        self = cls()
        self.proc = await asyncio.create_subprocess_exec(
            "/usr/bin/python3", HOLD_SCRIPT, "hold", "--socket", str(path), "--mode", mode,
            "--count", str(count), "--keep", str(keep),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, user=uid, group=uid)
        self.figures = None
        return self

    async def wait(self, predicate, what):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S
        while self.figures is None or not predicate(self.figures):
            line = await asyncio.wait_for(self.proc.stdout.readline(), max(0.0, deadline - loop.time()))
            assert line, "the holder exited (%s) waiting for %s" % (await self.proc.wait(), what)
            self.figures = json.loads(line)
        return self.figures

    async def stop(self):
        if self.proc.returncode is None:
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), DEADLINE_S)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@needs_root
async def test_reserve_lets_root_in_while_other_uids_fill_their_share():
    directory = shared_dir("leaderd-reserve-")
    path = os.path.join(directory, "leaderd.sock")
    server = ApiServer(path, FakeProvider(), mode=0o666, max_clients=6, reserved_clients=2,
                       max_clients_per_uid=4)
    holders = []
    try:
        await server.start()
        # nobody fills the unprivileged share (6 - 2 reserved) and may not take more.
        holders.append(await AsyncHolder.start(path, "idle", 6, NOBODY))
        await holders[0].wait(lambda f: f["replaced"] == 2, "two of nobody's six replaced by its own")
        await wait_until(lambda: server.request_count == 4, what="nobody to hold four")
        # A third uid finds the share full: refused, the reserve named.
        holders.append(await AsyncHolder.start(path, "idle", 1, NOBODY - 1))
        figures = await holders[1].wait(lambda f: f["refused"] == 1, "uid 65533 refused")
        assert "of which 2 are kept for root and the agent's uid" in figures["messages"][0], figures
        # Root (this process) has the reserve: two clients at once...
        clients = [await connect_and_ask(path) for _ in range(2)]
        assert server.request_count == 6
        # ... and nothing of nobody's is taken from it: a third is refused.
        reply = await refused_reply(path)
        assert reply["error"] == "too many clients (max 6); try again later"
        clients.pop().close()
        assert (await AsyncClient(path).leader())["term"] == 7  # is-leader's path, once a slot is free
        counters = server.counters()
        assert counters["api_refused"] == 2 and counters["api_replaced"] == 2, counters
        assert holders[0].figures["open"] == 4 and holders[0].figures["refused"] == 0, holders[0].figures
        for raw in clients:
            raw.close()
    finally:
        for holder in holders:
            await holder.stop()
        await server.close()
        shutil.rmtree(directory, ignore_errors=True)


# --- One real agent, held down ---------------------------------------------------------------


@pytest.fixture(scope="module")
def agent():
    """One `leaderd run` that leads, its socket 0666 in a 0755 directory (other uids may hold it)."""
    root = shared_dir("leaderd-limits-")
    cluster = Cluster(root, 1, extra_config={"api": {"mode": "0666"}})
    cluster.owns_root = True  # close() removes the directory made here
    try:
        cluster.start_all(timeout=SETTLE_S)
        cluster.wait_leader(leader=0, timeout=SETTLE_S)
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def holders():
    started = []
    yield started
    for holder in started:
        holder.stop()


def api_stats(cluster):
    return Client(cluster.socket_path(0)).status()["stats"]


def assert_is_leader_answers(cluster, runs=20):
    """`leaderd is-leader` exits 0 (this single agent leads), and agent.client gets the same answer every time."""
    ran = cluster.cli(0, "is-leader")
    assert ran.returncode == 0, "is-leader exited %d: %s" % (ran.returncode, ran.stderr)
    client = Client(cluster.socket_path(0), timeout=5.0)
    for _ in range(runs):
        assert client.leader()["is_leader"] is True


@pytest.mark.parametrize("holder_uid", [None, pytest.param(NOBODY, marks=needs_root)], ids=["own-uid", "nobody"])
def test_is_leader_answers_while_200_idle_connections_are_held(agent, holders, holder_uid):
    before = api_stats(agent)
    # What the agent keeps of one uid's idle connections: all it has for root
    # and its own uid, the per-uid share for another (agent/api.py's defaults).
    kept = MAX_CLIENTS if holder_uid is None else MAX_CLIENTS // 4
    holder = api_lockout.Holder(agent.socket_path(0), "idle", 200, keep=kept, uid=holder_uid)
    holders.append(holder)
    holder.wait(lambda f: f["open"] == kept and f["replaced"] >= 200 - kept, SETTLE_S,
                "the agent to keep %d of 200" % kept)
    assert_is_leader_answers(agent)
    stats = api_stats(agent)
    assert stats["api_replaced"] - before["api_replaced"] >= 200 - kept, stats
    if holder_uid is not None:  # another uid never gets more than its share
        assert stats["api_clients"] <= kept + 1, stats
    # The holder still holds its share: is-leader got in beside it, not after it left.
    figures = holder.wait(lambda f: f["open"] == kept, SETTLE_S, "the holder to hold %d" % kept)
    assert figures["other"] == 0 and figures["eof"] == 0, figures


@pytest.mark.parametrize("holder_uid", [None, pytest.param(NOBODY, marks=needs_root)], ids=["own-uid", "nobody"])
def test_is_leader_answers_while_64_watchers_are_held(agent, holders, holder_uid):
    per_uid = MAX_WATCHERS // 4
    watching = 64 if holder_uid is None else per_uid
    holder = api_lockout.Holder(agent.socket_path(0), "watch", 64, uid=holder_uid)
    holders.append(holder)
    figures = holder.wait(lambda f: f["watching"] == watching and f["open"] + f["refused"] == 64, SETTLE_S,
                          "%d watches" % watching)
    if holder_uid is not None:
        # Watches past nobody's share are refused; a refused watch stays a
        # request connection (until its idle timeout), so past 16 of those
        # the request share refuses the connection itself.
        allowed = ("too many watchers from uid %d (max %d per uid)" % (NOBODY, per_uid),
                   "too many clients from uid %d (max %d per uid)" % (NOBODY, MAX_CLIENTS // 4))
        assert all(m.startswith(allowed) for m in figures["messages"]), figures
    assert_is_leader_answers(agent)
    assert agent.wait_for(lambda: api_stats(agent)["watchers"] == watching, SETTLE_S,
                          "the agent to count %d watchers" % watching)


def test_agent_closes_an_idle_request_connection_and_counts_it(agent):
    before = api_stats(agent)["api_idle_closed"]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(SETTLE_S)
        sock.connect(agent.socket_path(0))
        sock.sendall(b'{"cmd": ')  # and nothing more
        received = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    reply = json.loads(received)
    assert reply == {"ok": False, "api": 1, "error": "closed: no complete request within 2 s"}
    assert api_stats(agent)["api_idle_closed"] == before + 1


def test_status_json_reports_the_api_counters(agent):
    ran = run_cli("status", "--json", "--socket", agent.socket_path(0))
    assert ran.returncode == 0, ran.stderr
    stats = json.loads(ran.stdout)["stats"]
    for key in ("api_clients", "watchers", "api_refused", "api_refused_per_uid", "api_watch_refused",
                "api_replaced", "api_idle_closed"):
        assert isinstance(stats[key], int), (key, stats)
