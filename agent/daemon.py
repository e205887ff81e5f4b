"""The daemon: `leaderd run`. A thin asyncio shell around agent.core.Node.

The loop is aioquic's transmit() pattern: feed the core (datagrams, timer
expiries, commands), send everything it returns, drain its events, re-arm
one timer at get_timer() with now = max(timer_at, loop_now). Signal handlers
only record the signal; the main task acts on it (SIGTERM: leave, then exit;
SIGHUP: build and validate a fresh config, then swap what can be swapped).
"""

import asyncio
import errno
import json
import logging
import os
import random
import signal
import socket
import sys
import time

from agent import __version__
from agent import config as config_mod
from agent import state as state_file
from agent.api import ApiServer, ApiStartError, Refused
from agent.core.node import Node
from agent.durations import format_duration
from agent.exitcodes import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from agent.health import HealthChecker
from agent.hooks import HookRunner
from agent.ratelimit import WarningLimiter
from agent.sdnotify import Notifier, watchdog_interval_s

log = logging.getLogger("leaderd")

# A datagram this large cannot be ours; the kernel hands us at most this.
_RECV_LIMIT = 65535

# Counters the core creates when they first count (their reason is known at
# run time): `status --json` reports them from the start, at zero, so that a
# monitor finds every counter docs/OPERATIONS.md names (tests/test_docs_truth.py).
_COUNTED_FROM_ZERO = (
    "dropped_unsigned", "dropped_bad_signature", "dropped_busy",
    "claims_rejected_not_member", "claims_rejected_untrusted", "claims_rejected_unsigned",
    "claims_rejected_bad_signature", "claims_rejected_busy", "claims_rejected_term_window",
    "duplicate_name",
    # The reflection guard's (agent/core/guard.py), added when first counted.
    "challenges_sent", "addresses_proven", "sync_truncated", "refused_reply_size", "refused_sync_rate_address",
    "refused_sync_rate_global", "refused_owed_evicted", "refused_relay_address", "refused_relay_duplicate",
    "refused_relay_busy", "refused_gossip_unproven", "refused_member_address", "refused_member_cap",
)


class _Transport(asyncio.DatagramProtocol):
    """The UDP endpoint: hands every datagram to the agent at once (no queue)."""

    def __init__(self, agent):
        self.agent = agent

    def datagram_received(self, data, addr):
        self.agent.on_datagram(data, addr)

    def error_received(self, exc):
        # ICMP errors (ECONNREFUSED, ...) of earlier sends: count, never stop.
        self.agent.stats["send_errors"] += 1
        log.debug("udp error: %s", exc)


class Agent:
    """One running agent: the node, its socket, its API, hooks and health check."""

    def __init__(self, cfg, runtime, config_path=None):
        self.cfg = cfg
        self.runtime = runtime
        self.config_path = config_path
        self.loop = asyncio.get_running_loop()
        self.stats = {"send_errors": 0, "hook_events": 0, "reloads": 0, "reload_errors": 0, "suspicions": 0}
        self._stop_metrics = None
        self.started = time.time()
        self.node = None
        self.transport = None
        self.api = None
        self.hooks = None
        self.health = None
        self.notifier = Notifier()
        self._timer = None
        self._timer_at = None
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._last_status = None
        self.watchers = 0
        self.seeds = {}          # "ip:port" the node tries -> the seed as configured ("host:port")
        self.unresolved = []     # configured seeds that did not resolve at start
        self._joined = None      # node.joined at the last pump, to log the moment it joins
        self._duplicate = None  # (address, ms) of the last duplicate_name event: status shows it
        self._leader_waiters = []  # (name, future) of transfers waiting for their successor's claim
        self._duplicate_warnings = WarningLimiter()  # duplicate_name: one WARNING per address a minute
        self._claim_warnings = WarningLimiter()  # claim_rejected: one WARNING per claimant a minute
        self._identity = dict((key, _get(cfg, key)) for key in _RESTART_KEYS)

    # --- Clock -------------------------------------------------------------

    def now_ms(self):
        """The core's clock: int ms of the loop's monotonic clock."""
        return int(self.loop.time() * 1000)

    # --- Start and stop ----------------------------------------------------

    async def start(self):
        """Binds the socket, creates the node, joins, opens the API, tells systemd."""
        cfg, rt = self.cfg, self.runtime
        bind = cfg.node.bind
        try:
            self.transport, _ = await self.loop.create_datagram_endpoint(
                lambda: _Transport(self), local_addr=bind, reuse_port=False)
        except OSError as exc:
            # asyncio's message names no address: say which one, and whose key it is.
            where = config_mod.format_hostport(bind)
            if exc.errno == errno.EADDRINUSE:
                why = "address already in use: another agent (or a `leaderd run` in a terminal) holds it"
            elif exc.errno in (errno.EPERM, errno.EACCES) and bind[1] >= 1024:
                # No privilege is needed above 1023: a cgroup rule said no, e.g. the unit's
                # SocketBindAllow=udp:7946 with another port in node.bind.
                why = ("%s: refused by the service's sandbox (systemd/leaderd.service allows only "
                       "SocketBindAllow=udp:7946): use port 7946 in node.bind, or allow this port in a "
                       "drop-in (docs/OPERATIONS.md)" % (exc.strerror or exc))
            else:
                why = exc.strerror or str(exc)
            raise OSError("cannot bind UDP %s (node.bind): %s" % (where, why)) from None
        sock = self.transport.get_extra_info("socket")
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, 1 << 20)
            except OSError:
                pass
        advertise = rt.advertise
        if advertise[1] == 0:
            advertise = (advertise[0], sock.getsockname()[1])
        now = self.now_ms()
        self.term_file = _term_file(cfg)
        self.maintenance_file = _maintenance_file(self.term_file)
        self.maintenance = self.maintenance_file is not None and os.path.exists(self.maintenance_file)
        saved_term, saved_incarnation = state_file.read(self.term_file)
        incarnation = state_file.start_incarnation(saved_incarnation)
        # What the file holds; _save_state() writes it again when either value grows.
        self._saved = (saved_term, -1 if saved_incarnation is None else saved_incarnation)
        self._term = saved_term
        arguments = dict(config_mod.node_arguments(cfg, rt), address=advertise)
        if self.maintenance:
            arguments["eligible"] = False
            log.warning("in maintenance (%s exists): this node does not lead until `leaderd maintenance off`",
                        self.maintenance_file)
        self.node = Node(rng=random.SystemRandom(), now=now, term=saved_term, incarnation=incarnation,
                         **arguments)
        log.info("starting at incarnation %d after term %d (state file: %s)", incarnation, saved_term,
                 self.term_file or "none, so both start afresh at each restart")
        for warning in rt.warnings:
            log.warning("INSECURE: %s" if "unauth" in warning or "insecure" in warning else "%s", warning)
        seeds = await self._resolve_seeds(cfg.cluster.seeds)
        self.node.join(seeds, now)
        # A "no leader" runs on_leader_change only if it lasts one claim interval (agent/hooks.py).
        self.hooks = HookRunner(_hook_table(cfg), cfg.hooks.timeout_s, cfg.node.name,
                                settle_s=self.node.profile.claim_interval_ms / 1000.0)
        self.hooks.start()
        if cfg.health.command:
            # The node was made ineligible (node_arguments): a candidate once the check passed rise times.
            self.health = HealthChecker(cfg.health.command, cfg.health.interval_s, cfg.health.timeout_s,
                                        cfg.health.rise, cfg.health.fall, self._on_health, healthy=False)
            self.health.start()
            log.info("health check %s: not eligible until it passes %d time%s in a row",
                     cfg.health.command[0], cfg.health.rise, "" if cfg.health.rise == 1 else "s")
        self.api = ApiServer(cfg.api.socket, self, mode=cfg.api.mode, group=cfg.api.group)
        await self.api.start()
        if cfg.metrics.listen is not None:
            self._start_metrics(cfg.metrics.listen)
        log.info("leaderd %s up: node %s at %s:%d, cluster %r, profile %s, socket %s",
                 __version__, cfg.node.name, advertise[0], advertise[1], cfg.cluster.name,
                 cfg.gossip.profile.name, cfg.api.socket)
        self._pump()
        self.notifier.notify("READY=1")
        self._update_status()

    async def run(self):
        """Runs until SIGTERM / SIGINT; returns the exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self._stop.set)
        self.loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        await self.start()
        watchdog = watchdog_interval_s()
        wd_task = self.loop.create_task(self._watchdog(watchdog)) if watchdog else None
        while not self._stop.is_set():
            reload_wait = self.loop.create_task(self._reload.wait())
            stop_wait = self.loop.create_task(self._stop.wait())
            await asyncio.wait({reload_wait, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            reload_wait.cancel()
            stop_wait.cancel()
            if self._reload.is_set() and not self._stop.is_set():
                self._reload.clear()
                try:
                    await self.reload()
                except Exception:
                    # What was swapped before the error stays; the rest keeps its old value.
                    self.stats["reload_errors"] += 1
                    log.exception("SIGHUP: reloading failed part way; the agent keeps running")
                    self._pump()
        if wd_task is not None:
            wd_task.cancel()
        await self.shutdown()
        return EXIT_OK

    def _start_metrics(self, listen):
        """The Prometheus endpoint (agent/metrics.py); OSError (the agent cannot start) when it cannot be had."""
        try:
            from agent import metrics
            self._stop_metrics = metrics.start(listen, self.status, self.loop)
        except ImportError:
            raise OSError("metrics.listen is set but the prometheus-client package is not installed "
                          "(pip install 'leaderd[metrics]', or remove metrics.listen)") from None
        except OSError as exc:
            raise OSError("cannot serve metrics at %s (metrics.listen): %s"
                          % (config_mod.format_hostport(listen), exc.strerror or exc)) from None
        log.info("Prometheus metrics at http://%s/metrics", config_mod.format_hostport(listen))

    async def shutdown(self):
        """Leaves gracefully (a leader resigns first), then closes everything."""
        self.notifier.notify("STOPPING=1")
        if self.node is not None and not self.node.left:
            await self._pre_demote("stopping")
            self.node.leave(self.now_ms())
            self._pump()
            log.info("left the cluster")
        if self._timer is not None:
            self._timer.cancel()
        if self.health is not None:
            await self.health.stop()
        if self.hooks is not None:
            # Let a demotion hook queued by the resignation run (bounded).
            try:
                await asyncio.wait_for(self.hooks.idle.wait(), self.cfg.hooks.timeout_s)
            except asyncio.TimeoutError:
                pass
            await self.hooks.stop()
        if self.api is not None:
            await self.api.close()
        if self._stop_metrics is not None:
            await self.loop.run_in_executor(None, self._stop_metrics)
            self._stop_metrics = None
        if self.transport is not None:
            self.transport.close()
        self.notifier.close()

    async def _watchdog(self, interval_s):
        while True:
            self.notifier.notify("WATCHDOG=1")
            await asyncio.sleep(interval_s)

    async def _resolve_seeds(self, seeds):
        out = []
        for host, port in seeds:
            try:
                infos = await self.loop.getaddrinfo(host, port, family=socket.AF_INET,
                                                    type=socket.SOCK_DGRAM)
            except OSError as exc:
                log.warning("seed %s:%d: cannot resolve: %s", host, port, exc)
                self.unresolved.append("%s:%d" % (host, port))
                continue
            if infos:
                address = infos[0][4][:2]
                out.append(address)
                self.seeds["%s:%d" % address] = "%s:%d" % (host, port)
        return out

    def _seed_names(self, addresses):
        """The seeds at addresses ("ip:port") as configured: "name:port (ip:port)" where they differ."""
        out = []
        for address in addresses:
            name = self.seeds.get(address, address)
            out.append(name if name == address else "%s (%s)" % (name, address))
        return out

    # --- Reload ------------------------------------------------------------

    async def reload(self):
        """SIGHUP: build and validate a fresh config, then swap what can change."""
        if self.config_path is None:
            log.warning("SIGHUP: no config file to reload")
            return
        try:
            cfg = config_mod.load_config(self.config_path)
            rt = config_mod.load_runtime(cfg)
        except (OSError, ValueError) as exc:
            self.stats["reload_errors"] += 1
            log.error("SIGHUP: config not reloaded, keeping the running one:\n%s", exc)
            return
        changed = [key for key in _RESTART_KEYS if _get(cfg, key) != self._identity[key]]
        if changed:
            log.warning("SIGHUP: %s cannot change without a restart; ignored",
                        ", ".join(key[:-3] if key.endswith("_ms") else key for key in changed))
        now = self.now_ms()
        node = self.node
        args = config_mod.node_arguments(cfg, rt)
        failed = []

        def apply(what, swap):
            # Each part on its own: one that raises (our bug, or the core's
            # "incarnation exhausted") leaves that part as it was, not the rest.
            try:
                swap()
            except Exception:
                failed.append(what)
                log.exception("SIGHUP: cannot apply %s; it keeps its running value", what)

        apply("cluster.keyring_file", lambda: node.set_keyring(args["keyring"]))
        apply("the signing key and trusted keys",
              lambda: node.set_election_keys(rt.signer, rt.verifier, args["trusted_keys"], now))
        apply("election.preempt and preempt_delay",
              lambda: node.set_preempt(cfg.election.preempt, cfg.election.preempt_delay_ms))
        apply("node.priority", lambda: node.set_priority(cfg.node.priority, now))
        apply("hooks", lambda: self.hooks.update(_hook_table(cfg), cfg.hooks.timeout_s))
        try:
            await self._swap_health(cfg, now)
        except Exception:
            failed.append("health")
            log.exception("SIGHUP: cannot apply health; the agent keeps running")
        changes = reload_changes(self.cfg, self.runtime, cfg, rt)
        self.cfg, self.runtime = cfg, rt
        summary = "; ".join(changes) if changes else "nothing changed"
        if failed:
            self.stats["reload_errors"] += 1
            log.error("SIGHUP: configuration reloaded except %s (errors above): %s", ", ".join(failed), summary)
        else:
            self.stats["reloads"] += 1
            log.info("SIGHUP: configuration reloaded: %s", summary)
        self._pump()
        self._rerun_role_hook()

    def _rerun_role_hook(self):
        """After a reload, the hook for this node's current role runs once (on_elected on the leader,
        on_leader_change on a follower), so a changed hook re-establishes the job's state."""
        current = self.node.leader()
        if current is None:
            return  # no leader known yet: the next change runs the hooks as usual
        if current[0] == self.node.name:
            self.hooks.submit("on_elected", self.node.name, current[1])
        else:
            self.hooks.submit("on_leader_change", current[0], current[1])

    async def _swap_health(self, cfg, now):
        """Replaces the health checker with the one cfg describes (or none)."""
        healthy = True
        if self.health is not None:
            healthy = self.health.healthy
            await self.health.stop()
            self.health = None
        if cfg.health.command:
            # Start from the state the node is in (a check added by this
            # reload: eligible, until it fails `fall` times): the checker
            # reports only changes, so an ineligible node whose check now
            # passes would otherwise never become eligible again.
            self.health = HealthChecker(cfg.health.command, cfg.health.interval_s, cfg.health.timeout_s,
                                        cfg.health.rise, cfg.health.fall, self._on_health, healthy=healthy)
            self.health.start()
        else:
            self._set_eligible(now)

    async def _pre_demote(self, reason):
        """Runs hooks.pre_demote, and waits for it, when this node leads and is about to give the
        role up on purpose (reason: maintenance, stopping, health, transfer)."""
        if self.hooks is None or not self.node.is_leader():
            return
        term = self.node.term()
        if await self.hooks.run_now("pre_demote", self.node.name, term, self.cfg.hooks.pre_demote_timeout_s,
                                    {"LEADERD_REASON": reason}):
            log.info("pre_demote ran (%s); handing over now", reason)

    def _set_eligible(self, now):
        """Eligible to lead: the health check passes (or there is none) and not in maintenance."""
        healthy = self.health is None or self.health.healthy
        self.node.set_eligible(healthy and not self.maintenance, now)

    def _on_health(self, healthy):
        if not healthy and self.node.is_leader() and self.cfg.hooks.pre_demote:
            # The leader's job gets pre_demote's time before the hand-over.
            self.loop.create_task(self._health_failed())
            return
        try:
            self._set_eligible(self.now_ms())
        except Exception:
            log.exception("health check: cannot make the node %s; the agent keeps running",
                          "eligible" if healthy else "ineligible")
        self._pump()

    async def _health_failed(self):
        await self._pre_demote("health")
        try:
            self._set_eligible(self.now_ms())  # unless the check passes again meanwhile
        except Exception:
            log.exception("health check: cannot make the node ineligible; the agent keeps running")
        self._pump()

    async def set_maintenance(self, on):
        """`leaderd maintenance on|off`: not eligible to lead (a leader resigns: the next in rank takes
        over) until turned off, across restarts when there is a state file to keep it next to."""
        on = bool(on)
        persisted = self.maintenance_file is not None
        if persisted:
            if on:
                with open(self.maintenance_file, "w") as handle:
                    handle.write("leaderd maintenance on: this node does not lead until `leaderd maintenance off`\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                state_file.fsync_directory(self.maintenance_file)
            else:
                try:
                    os.unlink(self.maintenance_file)
                except FileNotFoundError:
                    pass
                state_file.fsync_directory(self.maintenance_file)
        changed = on != self.maintenance
        was_leader = self.node.is_leader()
        if on and changed:
            await self._pre_demote("maintenance")
        self.maintenance = on
        self._set_eligible(self.now_ms())
        self._pump()
        if changed:
            log.warning("maintenance %s%s", "on: this node does not lead" if on else "off: this node may lead again",
                        "" if persisted else " (no state file: a restart ends it)")
        return {"maintenance": on, "persisted": persisted, "was_leader": was_leader}

    async def transfer(self, to=None):
        """`leaderd transfer [NODE]`: as leader, hands the role to NODE (None: the next in rank) with
        a signed hand-over, after hooks.pre_demote, and answers once the successor's claim is back
        here (or a leader timeout passed). Refused (the reason) when this node does not lead (the
        reply names the leader) or NODE is unknown, not alive, untrusted or ineligible."""
        node = self.node
        try:
            node.successor(to)  # refused before pre_demote runs
            await self._pre_demote("transfer")
            started = time.monotonic()
            name = node.transfer(to, self.now_ms())  # checked again: pre_demote took time
        except ValueError as exc:
            raise Refused("cannot transfer: %s" % exc) from None
        future = self.loop.create_future()
        waiter = (name, future)
        self._leader_waiters.append(waiter)
        self._pump()
        log.warning("transfer: handed the role to %s", name)
        try:
            term = await asyncio.wait_for(future, 3 * node.profile.claim_interval_ms / 1000.0)
        except asyncio.TimeoutError:
            term = None
        finally:
            if waiter in self._leader_waiters:
                self._leader_waiters.remove(waiter)
        current = node.leader()
        return {"from": node.name, "to": name, "confirmed": term is not None,
                "term": term if term is not None else (current[1] if current else node.term()),
                "elapsed_ms": round((time.monotonic() - started) * 1000.0, 1),
                "leader": current[0] if current else None}

    # --- The pump ----------------------------------------------------------

    def on_datagram(self, data, addr):
        """A datagram arrived: feed the core, then pump."""
        if len(data) > _RECV_LIMIT:
            return
        self.node.receive_datagram(data, (addr[0], addr[1]), self.now_ms())
        self._pump()

    def _on_timer(self):
        self._timer = None
        at = self._timer_at
        self._timer_at = None
        now = self.now_ms()
        self.node.handle_timer(max(at, now) if at is not None else now)
        self._pump()

    def _pump(self):
        """Sends what the core wants sent, handles its events, re-arms its timer."""
        node = self.node
        now = self.now_ms()
        for data, addr in node.datagrams_to_send(now):
            try:
                self.transport.sendto(data, addr)
            except OSError as exc:
                self.stats["send_errors"] += 1
                log.debug("send to %s:%d failed: %s", addr[0], addr[1], exc)
        while True:
            event = node.next_event()
            if event is None:
                break
            self._on_event(event)
        if node.joined != self._joined:
            if node.joined and self._joined is not None:
                log.info("joined the cluster: %d live members", node.live_count())
            self._joined = node.joined
        self._save_state()
        at = node.get_timer()
        if at != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._timer_at = at
            if at is not None:
                self._timer = self.loop.call_at(at / 1000.0, self._on_timer)

    def _on_event(self, event):
        kind = event.kind
        if kind == "datagram_dropped":
            log.debug("dropped a datagram from %s: %s", event.address, event.reason)
            return
        data = event.as_dict()
        if kind == "join_timed_out":
            # Lone start (cluster.join_timeout): said loudly, once.
            others = self.node.live_count() - 1
            log.warning("no seed answered within %s: cannot reach %s; taking part in the election with %s, "
                        "and still trying the seeds every %s (check cluster.seeds, cluster.name, the keyring "
                        "and the firewall)", format_duration(event.after_ms),
                        ", ".join(self._seed_names(event.seeds) + self.unresolved),
                        "%d other member%s" % (others, "" if others == 1 else "s") if others else "no other member (alone)",
                        format_duration(self.node.profile.join_retry_ms))
        if kind in ("leader_changed", "elected", "demoted", "self_refuted"):
            level = logging.INFO
        else:
            level = logging.INFO if kind in ("member_joined", "member_died", "member_left") else logging.DEBUG
        if kind == "internal_error":
            # A bug in the core, contained there (it goes on); the traceback is for the bug report.
            error = self.node.last_error
            log.error("internal error in %s (the agent goes on): %s", event.where, event.error,
                      exc_info=(type(error), error, error.__traceback__) if error is not None else None)
        elif kind == "duplicate_name":
            # Each of the two agents says so, naming the other; once a minute per address.
            self._duplicate = (event.address, self.now_ms())
            allowed, held = self._duplicate_warnings.allow(event.address)
            if allowed:
                log.warning("another agent at %s:%d announces this node's name %r (this agent is at %s:%d): two "
                            "agents share one name (give each its own node.name), or a forger holds the cluster "
                            "key%s", event.address[0], event.address[1], self.node.name,
                            self.node.address[0], self.node.address[1],
                            " (%d more reports since the last warning)" % held if held else "")
        elif kind == "claim_rejected":
            # The core reports a claimant at most once per claim interval; a
            # WARNING at most once a minute per claimant, the rest at DEBUG.
            allowed, held = self._claim_warnings.allow(event.name)
            if allowed:
                log.warning("%s %s%s", kind, _fields(data),
                            " (%d more from %s since the last warning, logged at debug level)" % (held, event.name)
                            if held else "")
            else:
                log.debug("%s %s", kind, _fields(data))
        elif kind not in ("join_timed_out", "duplicate_name"):
            log.log(level, "%s %s", kind, _fields(data))
        if kind in ("leader_changed", "elected") and event.term is not None and event.term > self._term:
            self._term = event.term
        if kind == "member_suspected":
            self.stats["suspicions"] += 1
        if kind == "leader_changed":
            # The state this event saw (its term, its new leader), in the
            # `leader --json` shape; never the current state: later events of
            # the same pump may already have changed it.
            data.update(self._leader_fields(event.new))
            for name, future in self._leader_waiters:
                if name == event.new and not future.done():
                    future.set_result(event.term)
            self.stats["hook_events"] += 1
            self.hooks.leader_changed(event.new, event.term)
            self._update_status()
        elif kind == "elected":
            self.hooks.submit("on_elected", self.node.name, event.term)
        elif kind == "demoted":
            # The leader that outranked this node, if the node follows it at
            # the demotion's term; none when it resigned or became ineligible.
            current = self.node.leader()
            outranked_by = current[0] if current is not None and current[1] == event.term \
                and current[0] != self.node.name else None
            self.hooks.submit("on_demoted", outranked_by, event.term)
        if self.api is not None:
            self.api.publish(data)

    def _save_state(self):
        """Keeps the highest term and the incarnation on disk (agent/state.py), so both grow across restarts.

        Called after every pump: a new term comes with an event, a new
        incarnation (a refutation, a priority or eligibility change) with
        none. A failed write is logged once per new pair of values.
        """
        saved = self._saved
        term, incarnation = max(self._term, saved[0]), max(self.node.incarnation, saved[1])
        if self.term_file is None or (term, incarnation) == saved:
            return
        self._saved = (term, incarnation)  # a failed write is not retried until a value grows again
        try:
            state_file.save(self.term_file, term, incarnation)
        except OSError as exc:
            log.warning("cannot save the term and incarnation to %s: %s", self.term_file, exc)

    def _update_status(self):
        info = self.leader()
        if info["leader"] is None:
            status = "no leader (term %d)" % info["term"]
        elif info["is_leader"]:
            status = "leader (term %d)" % info["term"]
        else:
            status = "following %s (term %d)" % (info["leader"], info["term"])
        if status != self._last_status:
            self._last_status = status
            self.notifier.notify("STATUS=" + status)

    # --- The API provider --------------------------------------------------

    def leader(self):
        """The `leader --json` shape."""
        node = self.node
        current = node.leader()
        info = self._leader_fields(current[0] if current else None)
        info["term"] = current[1] if current else node.term()
        info["is_leader"] = node.is_leader()
        return info

    def _leader_fields(self, name):
        """The `leader --json` fields but "term" for leader `name` (or None)."""
        node = self.node
        address = None
        if name is not None:
            member = node.member(name)
            if member is not None:
                address = "%s:%d" % member.address
        return {"leader": name, "address": address, "self": node.name, "is_leader": name == node.name,
                "insecure": node.insecure}

    def members(self):
        """The `members --json` shape."""
        now = self.now_ms()
        out = []
        for m in self.node.members():
            d = m.as_dict()
            d["since_s"] = None if m.name == self.node.name else round((now - m.since_ms) / 1000.0, 1)
            d["self"] = m.name == self.node.name
            out.append(d)
        return {"members": out}

    def status(self):
        """The `status --json` shape: identity, leadership, counters."""
        node = self.node
        counts = {}
        for m in node.members():
            counts[m.state_name] = counts.get(m.state_name, 0) + 1
        stats = dict.fromkeys(_COUNTED_FROM_ZERO, 0)
        stats.update(node.counters())
        stats.update(self.stats)
        hooks = self.hooks
        stats.update({"hook_runs": hooks.runs, "hook_failures": hooks.failures, "hooks_dropped": hooks.dropped,
                      "hooks_pending": hooks.pending, "hook_ms": int(hooks.seconds * 1000)})
        stats.update(self.api.counters())  # watchers, api_clients, api_refused...
        return {
            "self": node.name, "cluster": node.cluster, "address": "%s:%d" % node.address,
            "version": __version__, "pid": os.getpid(), "uptime_s": round(time.time() - self.started, 1),
            "incarnation": node.incarnation, "priority": node.priority, "eligible": node.eligible,
            "maintenance": self.maintenance,
            "healthy": self.health.healthy if self.health is not None else None,
            "health": None if self.health is None else {
                "command": self.health.argv[0], "healthy": self.health.healthy, "checks": self.health.checks,
                "passes": self.health.passes, "rise": self.health.rise, "errors": self.health.errors},
            "profile": node.profile.name, "awareness": node.awareness_score(),
            "joined": node.joined, "waiting_for_seeds": node.waiting_for_seeds(),
            "seeds": self._seed_names(sorted(self.seeds)) + self.unresolved,
            "authenticated": node.authenticated,
            "duplicate_name": None if self._duplicate is None else {
                "address": "%s:%d" % self._duplicate[0],
                "seen_s_ago": round((self.now_ms() - self._duplicate[1]) / 1000.0, 1)},
            "leader": self.leader(), "members": counts, "stats": stats,
        }


def _show_argv(argv):
    return "none" if not argv else " ".join(argv)


def _names(keys):
    return ", ".join(sorted(keys)) or "none"


def reload_changes(old_cfg, old_rt, new_cfg, new_rt):
    """What a reload changes among what it applies, as "key old -> new" phrases (none: an empty list)."""
    changes = []

    def compare(key, old, new, show=str):
        if old != new:
            changes.append("%s %s -> %s" % (key, show(old), show(new)))

    compare("node.priority", old_cfg.node.priority, new_cfg.node.priority)
    compare("election.preempt", old_cfg.election.preempt, new_cfg.election.preempt,
            lambda v: "true" if v else "false")
    compare("election.preempt_delay", old_cfg.election.preempt_delay_ms, new_cfg.election.preempt_delay_ms,
            format_duration)
    compare("cluster.keyring_file", old_cfg.cluster.keyring_file, new_cfg.cluster.keyring_file)
    if old_rt.keyring != new_rt.keyring:
        old_keys, new_keys = old_rt.keyring or (), new_rt.keyring or ()
        primary = "a new primary key" if old_keys[:1] != new_keys[:1] else "the same primary key"
        changes.append("cluster keys: %d -> %d, %s" % (len(old_keys), len(new_keys), primary))
    if old_rt.public_key != new_rt.public_key:
        changes.append("election.signing_key_file: a different key (%s)" % (new_cfg.election.signing_key_file or "none"))
    old_trust, new_trust = dict(old_rt.trusted_keys or {}), dict(new_rt.trusted_keys or {})
    if old_trust != new_trust or (old_rt.trusted_keys is None) != (new_rt.trusted_keys is None):
        added = set(new_trust) - set(old_trust)
        removed = set(old_trust) - set(new_trust)
        replaced = {n for n in set(old_trust) & set(new_trust) if old_trust[n] != new_trust[n]}
        parts = ["a trust list now (claims verified)"] if old_rt.trusted_keys is None else []
        parts += ["trusted %s" % _names(added)] if added else []
        parts += ["no longer trusted %s" % _names(removed)] if removed else []
        parts += ["new key for %s" % _names(replaced)] if replaced else []
        if new_rt.trusted_keys is None:
            parts.append("no trust list now (claims unverified)")
        changes.append("trusted keys: " + ", ".join(parts))
    for event in config_mod.HOOK_EVENTS:
        compare("hooks." + event, getattr(old_cfg.hooks, event), getattr(new_cfg.hooks, event), _show_argv)
    compare("hooks.timeout", old_cfg.hooks.timeout_ms, new_cfg.hooks.timeout_ms, format_duration)
    compare("health.command", old_cfg.health.command, new_cfg.health.command, _show_argv)
    for field in ("interval_ms", "timeout_ms"):
        compare("health." + field[:-3], getattr(old_cfg.health, field), getattr(new_cfg.health, field),
                format_duration)
    for field in ("rise", "fall"):
        compare("health." + field, getattr(old_cfg.health, field), getattr(new_cfg.health, field))
    return changes


# What a reload cannot change: the running values stay, with a warning each time.
_RESTART_KEYS = ("node.name", "node.bind", "cluster.name", "api.socket", "cluster.join_timeout_ms",
                 "cluster.max_members", "metrics.listen")


def _term_file(cfg):
    """The state file (agent/state.py): election.term_file, else $STATE_DIRECTORY/term under systemd, else None."""
    if cfg.election.term_file:
        return cfg.election.term_file
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return os.path.join(state.split(":")[0], "term")
    return None


def _maintenance_file(term_file):
    """Where maintenance mode is kept across restarts: beside the state file (None without one)."""
    if term_file is None:
        return None
    return os.path.join(os.path.dirname(os.path.abspath(term_file)), "maintenance")


def _hook_table(cfg):
    h = cfg.hooks
    return {"on_elected": h.on_elected, "on_demoted": h.on_demoted, "on_leader_change": h.on_leader_change,
            "pre_demote": h.pre_demote}


def _get(cfg, dotted):
    value = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _fields(data):
    return " ".join("%s=%s" % (k, data[k]) for k in sorted(data) if k != "event")


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and exc (the traceback) when there is one."""

    def format(self, record):
        line = {"ts": round(record.created, 3), "level": record.levelname.lower(),
                "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line)


class _JournalPrefix(logging.Formatter):
    """Prefixes "<N>" (syslog priority) so journald files each line at its level."""

    _PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
                 logging.CRITICAL: 2}

    def __init__(self, inner):
        logging.Formatter.__init__(self)
        self.inner = inner

    def format(self, record):
        return "<%d>%s" % (self._PRIORITY.get(record.levelno, 6), self.inner.format(record))


def setup_logging(level, fmt):
    """Logs to stderr as text or JSON lines (with priorities under journald)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        formatter = _JsonFormatter()
    elif os.environ.get("JOURNAL_STREAM"):
        # journald stamps the time itself.
        formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.environ.get("JOURNAL_STREAM"):
        formatter = _JournalPrefix(formatter)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))


def run(config_path=None):
    """`leaderd run`: loads the config (or defaults), runs until SIGTERM; returns an exit code."""
    try:
        cfg = config_mod.load_config(config_path) if config_path else config_mod.default_config()
        rt = config_mod.load_runtime(cfg)
    except (OSError, ValueError) as exc:
        print("leaderd: configuration error:\n%s" % exc, file=sys.stderr)
        return EXIT_USAGE
    setup_logging(cfg.log.level, cfg.log.format)

    async def main():
        agent = Agent(cfg, rt, config_path)
        try:
            return await agent.run()
        except (OSError, ApiStartError) as exc:
            # ApiStartError (socket in use, bad group...) is not an OSError:
            # without it here the daemon died with a traceback and no leave.
            log.error("cannot start: %s", exc)
            await agent.shutdown()
            return EXIT_FAILURE

    return asyncio.run(main())
