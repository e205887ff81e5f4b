"""`agent.client.leadership()` and `Client.wait_until_leader()` against real agents."""

import asyncio
import signal

import pytest

from agent.client import Client, LeadershipLost, leadership
from daemon_harness import Cluster


async def _hold(cluster, i, entered, ended):
    """Runs `async with leadership()` on node i: records the lease, then waits to be cancelled."""
    try:
        async with leadership(socket=cluster.socket_path(i)) as lease:
            entered.append(lease)
            await asyncio.sleep(3600)
    except LeadershipLost as lost:
        ended.append(lost)
        return
    ended.append(None)  # the body ended without being cancelled (a bug)


async def _until(predicate, timeout, what):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() >= deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        await asyncio.sleep(0.05)


def test_the_body_runs_while_this_node_leads_and_is_cancelled_when_it_stops(tmp_path):
    with Cluster(tmp_path / "c", 2) as cluster:
        cluster.start_all()
        info = cluster.wait_leader(timeout=20)
        assert info["leader_index"] == 0  # node-0 ranks first

        async def scenario():
            on_follower, follower_ended = [], []
            on_leader, leader_ended = [], []
            follower = asyncio.ensure_future(_hold(cluster, 1, on_follower, follower_ended))
            leader = asyncio.ensure_future(_hold(cluster, 0, on_leader, leader_ended))
            try:
                await _until(lambda: on_leader, 20, "the leader's body to start")
                assert on_leader[0].term == info["term"] and on_leader[0].name == cluster.name(0), on_leader
                assert not on_follower, on_follower
                # The leader's agent dies: its body is cancelled (the agent is lost); the
                # follower is elected and its body starts, with a later term.
                await asyncio.get_running_loop().run_in_executor(None, cluster.kill, 0)
                await _until(lambda: leader_ended, 20, "the old leader's body to be cancelled")
                assert isinstance(leader_ended[0], LeadershipLost) and "agent is lost" in leader_ended[0].reason
                await _until(lambda: on_follower, 30, "the new leader's body to start")
                assert on_follower[0].term > info["term"], on_follower
                # node-0 comes back and takes over (preempt): node-1's body is cancelled.
                await asyncio.get_running_loop().run_in_executor(None, cluster.start, 0)
                await _until(lambda: follower_ended, 40, "node-1's body to be cancelled on its demotion")
                assert isinstance(follower_ended[0], LeadershipLost), follower_ended
                assert "no longer leads" in follower_ended[0].reason, follower_ended[0]
            finally:
                for task in (follower, leader):
                    task.cancel()
                await asyncio.gather(follower, leader, return_exceptions=True)

        asyncio.run(scenario())


def test_a_hung_agent_cancels_the_body_and_an_outside_cancel_stays_a_cancel(tmp_path):
    with Cluster(tmp_path / "c", 1) as cluster:
        cluster.start_all()
        cluster.wait_leader(timeout=20)

        async def scenario():
            entered, ended = [], []
            task = asyncio.ensure_future(_hold(cluster, 0, entered, ended))
            await _until(lambda: entered, 20, "the body to start")
            cluster.send_signal(0, signal.SIGSTOP)
            try:
                await _until(lambda: ended, 15, "the body to be cancelled while the agent hangs")
            finally:
                cluster.send_signal(0, signal.SIGCONT)
            assert isinstance(ended[0], LeadershipLost) and "agent is lost" in ended[0].reason, ended
            await task
            # A cancel from outside (not a loss of leadership) is not turned into LeadershipLost.
            entered, ended = [], []
            task = asyncio.ensure_future(_hold(cluster, 0, entered, ended))
            await _until(lambda: entered, 20, "the body to start again")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not ended, ended

        asyncio.run(scenario())


def test_wait_until_leader_returns_the_leader_reply_or_none_on_a_follower(tmp_path):
    with Cluster(tmp_path / "c", 2) as cluster:
        cluster.start_all()
        info = cluster.wait_leader(timeout=20)
        reply = Client(cluster.socket_path(0)).wait_until_leader(timeout=10)
        assert reply["is_leader"] and reply["term"] == info["term"], reply
        assert Client(cluster.socket_path(1)).wait_until_leader(timeout=0.5) is None
