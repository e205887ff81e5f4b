"""Metrics: what the simulator measures, kept up to date from the nodes' events.

Theory of operation. The simulator never scans membership tables. Each node
(an "observer", by index) has a *view*: the set of other nodes it currently
believes alive, updated from its events (member_joined / updated / recovered
add; member_suspected / died / left remove). A node is *live* while it runs
and can act: started, not crashed, not paused, not departed after a leave.
Three counters are kept exact at O(1) per event:

- live_seen[o]: how many live nodes o's view holds;
- seen_by[t]: how many live observers hold t in their view;
- good: the sum of live_seen[o] over live observers o.

"All live nodes see all live nodes alive" is then `good == L * (L - 1)`
with L live nodes, and "every live node sees t alive" is
`seen_by[t] == L - 1`. A node becoming live or not (start, crash, pause,
resume, restart, leave) costs O(n), which is rare.

Leadership (once the core has `Node.leader()`) works the same way: each live
node's reported leader name votes; the *agreed* leader is the name with L
votes. Alongside, per node (per core: a restarted node's new core starts a
record of its own, from the term its term file gives it):

- term_regressions: times a node followed a leader at a term lower than
  one it had followed before (the term is a fencing token: must be 0);
- max_leaders_at_once: the most live nodes that considered themselves
  leader (node.is_leader()) at one moment (informative: 2 while a
  partition lets each side elect its own).

False alarms. A *false suspicion* is a member_suspected event whose `by` is
the observer itself (its own probe failed) about a node that was up, and
reachable both ways from the observer, without a break for the whole probe
(suspicion_window_ms: the probe interval at its Lifeguard worst, the longest
a probe can last) up to that moment, the observer being up all that time
too. A *false death* is likewise a member_died event with `by` = the
observer (its own suspicion timed out: a declaration) about a node up and
reachable from it for the whole suspicion (death_window_ms: the maximum
suspicion timeout at this cluster size, plus the probe that started it).
So a death declared across a partition, or across one that healed less
than a suspicion ago, is not false, and news of a death received from
others is the same death, not a new one. The older, per-observer counts
(every suspected / died event about a node up and reachable at that moment,
whoever declared it) are kept as false_suspicions_seen and
false_deaths_seen.

Times are int milliseconds of virtual time; `report()` turns them into
seconds rounded to 3 decimals.
"""

ALIVE_KINDS = ("member_joined", "member_updated", "member_recovered")
NOT_ALIVE_KINDS = ("member_suspected", "member_died", "member_left")


def seconds(milliseconds):
    """int ms (or None) as float seconds rounded to 3 decimals (or None)."""
    if milliseconds is None:
        return None
    return round(milliseconds / 1000.0, 3)


class CrashWatch:
    """Detection of one crashed node: who marked it dead (member_died), and when."""

    __slots__ = ("target", "crashed_at", "died_by", "first_at", "all_at")

    def __init__(self, target, crashed_at):
        self.target = target
        self.crashed_at = crashed_at
        self.died_by = set()
        self.first_at = None
        self.all_at = None


class Metrics:
    """Incremental counters of convergence, detection, leadership and false alarms."""

    def __init__(self, count, election=False):
        self.count = count
        self.election = election
        self.names = None  # node names by index (set by the simulation): who "by" is
        self.live = bytearray(count)
        self.live_count = 0
        self.started = 0
        self.views = [set() for _ in range(count)]
        self.live_seen = [0] * count
        self.seen_by = [0] * count
        self.good = 0
        # Leadership.
        self.leader_of = [None] * count
        self.votes = {}
        self.agreed = None
        self.agreed_ever = False
        self.leader_changes = 0
        self.failover_from = None  # (time, old leader name) while a failover is timed
        self.failover_ms = None
        self.agreement_watchers = []  # [key, since, name or None]: all live follow one leader
        # Terms: the term each node (each core) follows, never to decrease.
        self.term_of = [None] * count
        self.term_regressions = 0
        self.regressions = []  # the first few (time, node index, from term, to term), for messages
        # Nodes that consider themselves leader.
        self.self_leader = bytearray(count)
        self.leaders_now = 0  # among live nodes
        self.max_leaders_at_once = 0
        # A forger (the forged scenario): nobody may follow it or reach its terms.
        self.forger = None
        self.forger_followed = 0  # a node followed the forger, or a forged (name, term)
        self.forged = set()  # (name, term) of every forged claim injected
        self.forged_floor = None  # lowest forged term injected so far
        self.forged_term_adopted = 0  # a node followed or reached a term >= forged_floor
        self.max_term = 0  # the highest term any node followed
        # Results and watchers.
        self.convergence_at = None
        self.on_first_convergence = []
        self.converge_watchers = []  # [key, since]: all live see all live alive
        self.rejoin_watchers = []  # [key, since, target]: all live see target alive
        self.extras = {}
        self.crash_watches = []
        self.false_suspicions = 0
        self.false_deaths = 0
        self.false_suspicions_seen = 0
        self.false_deaths_seen = 0
        self.event_counts = {}
        # Set by the simulation: is_up(t), reachable(o, t) and
        # steady_since(o, t, since) for false alarms, and the windows.
        self.is_up = None
        self.reachable = None
        self.steady_since = None
        self.suspicion_window_ms = 0
        self.death_window_ms = 0

    # -- views ----------------------------------------------------------

    def _set_view(self, observer, target, alive):
        view = self.views[observer]
        if alive:
            if target in view:
                return
            view.add(target)
            delta = 1
        else:
            if target not in view:
                return
            view.discard(target)
            delta = -1
        if self.live[target]:
            self.live_seen[observer] += delta
            if self.live[observer]:
                self.good += delta
        if self.live[observer]:
            self.seen_by[target] += delta

    def make_live(self, node, now):
        """node starts, resumes or restarts: it counts as an observer and a target again."""
        if self.live[node]:
            return
        self.live[node] = 1
        self.live_count += 1
        # As a target: everyone whose view holds it gains a live member.
        for observer in range(self.count):
            if observer != node and node in self.views[observer]:
                self.live_seen[observer] += 1
        # As an observer: its view now counts towards seen_by and good.
        for target in self.views[node]:
            self.seen_by[target] += 1
        self.good += self.seen_by[node] + self.live_seen[node]
        self._vote(self.leader_of[node], 1)
        if self.self_leader[node]:
            self._count_leaders(1)
        self._check_agreement(now)

    def make_down(self, node, now, forget=False):
        """node crashed, paused or departed; forget=True also clears its view (a new process follows)."""
        if self.live[node]:
            self.good -= self.seen_by[node] + self.live_seen[node]
            for target in self.views[node]:
                self.seen_by[target] -= 1
            for observer in range(self.count):
                if observer != node and node in self.views[observer]:
                    self.live_seen[observer] -= 1
            self.live[node] = 0
            self.live_count -= 1
            self._vote(self.leader_of[node], -1)
            if self.self_leader[node]:
                self.leaders_now -= 1
        if forget:
            for target in list(self.views[node]):
                self._set_view(node, target, False)
            self.leader_of[node] = None
            self.self_leader[node] = 0
        self._check_agreement(now)
        self._check_detection_all(now)

    def converged(self):
        """True when every live node sees every other live node alive."""
        live = self.live_count
        return self.good == live * (live - 1)

    # -- events ---------------------------------------------------------

    def observe(self, observer, event, target, now):
        """Account one event from observer; target is the index the event names, or None."""
        kind = event.kind
        self.event_counts[kind] = self.event_counts.get(kind, 0) + 1
        if kind == "leader_changed":
            if event.new is not None and event.term is not None:
                self._follow_term(observer, event.term, now)
            return
        if target is None or target == observer:
            return
        if kind in ALIVE_KINDS:
            self._set_view(observer, target, True)
        elif kind in NOT_ALIVE_KINDS:
            self._set_view(observer, target, False)
            if kind == "member_suspected":
                if self._false_alarm(observer, target):
                    self.false_suspicions_seen += 1
                    if self._declared(observer, event) and self._steady(
                            observer, target, now - self.suspicion_window_ms):
                        self.false_suspicions += 1
            elif kind == "member_died":
                if self._false_alarm(observer, target):
                    self.false_deaths_seen += 1
                    if self._declared(observer, event) and self._steady(
                            observer, target, now - self.death_window_ms):
                        self.false_deaths += 1
                self._record_death(observer, target, now)

    def _false_alarm(self, observer, target):
        return self.is_up(target) and self.reachable(observer, target)

    def _declared(self, observer, event):
        """Whether observer itself raised the alarm (its probe, its suspicion timeout)."""
        return self.names is not None and event.by == self.names[observer]

    def _steady(self, observer, target, since):
        if self.steady_since is None:
            return True  # no history to ask: up and reachable now is all we know
        return self.steady_since(observer, target, since)

    # -- detection of crashes -------------------------------------------

    def watch_crash(self, target, now):
        """Start timing the detection of target's crash at now."""
        self.crash_watches.append(CrashWatch(target, now))

    def _record_death(self, observer, target, now):
        for watch in self.crash_watches:
            if watch.target != target or watch.all_at is not None or not self.live[observer]:
                continue
            watch.died_by.add(observer)
            if watch.first_at is None:
                watch.first_at = now
            self._check_watch(watch, now)

    def _check_watch(self, watch, now):
        if len(watch.died_by) < self.live_count:
            return
        live = self.live
        if sum(1 for observer in watch.died_by if live[observer]) >= self.live_count:
            watch.all_at = now

    def _check_detection_all(self, now):
        for watch in self.crash_watches:
            if watch.all_at is None and watch.first_at is not None:
                self._check_watch(watch, now)

    # -- leadership -----------------------------------------------------

    def _vote(self, name, delta):
        if name is not None:
            self.votes[name] = self.votes.get(name, 0) + delta

    def new_core(self, node):
        """A fresh core starts on node (start or restart): it has followed no term yet."""
        self.term_of[node] = None
        self.self_leader[node] = 0

    def set_leader(self, node, name, now, term=None, is_self=False):
        """node now reports name (or None) as the leader, at term; is_self: it leads itself."""
        if term is not None:
            self._follow_term(node, term, now)
        if is_self != bool(self.self_leader[node]):
            self.self_leader[node] = 1 if is_self else 0
            if self.live[node]:
                self._count_leaders(1 if is_self else -1)
        if name is not None and (name == self.forger or (self.forged and (name, term) in self.forged)):
            self.forger_followed += 1
        old = self.leader_of[node]
        if old == name:
            return
        self.leader_of[node] = name
        if self.live[node]:
            self._vote(old, -1)
            self._vote(name, 1)
            self._check_agreement(now)

    def _follow_term(self, node, term, now):
        last = self.term_of[node]
        if last is not None and term < last:
            self.term_regressions += 1
            if len(self.regressions) < 10:
                self.regressions.append((now, node, last, term))
        if last is None or term > last:
            self.term_of[node] = term
            if term > self.max_term:
                self.max_term = term
        if self.forged_floor is not None and term >= self.forged_floor:
            self.forged_term_adopted += 1

    def _count_leaders(self, delta):
        self.leaders_now += delta
        if self.leaders_now > self.max_leaders_at_once:
            self.max_leaders_at_once = self.leaders_now

    def forged_term(self, term, name=None):
        """A forged claim (under name) at term was injected: no node may follow it, and,
        since term is far above any real one, no node should reach such a term at all."""
        if name is not None:
            self.forged.add((name, term))
        if self.forged_floor is None or term < self.forged_floor:
            self.forged_floor = term

    def agreed_now(self):
        """The leader every live node reports at this moment, or None."""
        if self.live_count == 0:
            return None
        for name in self.votes:
            if self.votes[name] == self.live_count:
                return name
        return None

    def watch_agreement(self, key, now, name=None):
        """Record extras[key] = time from now until every live node follows one leader (name, if given)."""
        self.extras[key] = None
        self.agreement_watchers.append([key, now, name])
        self._check_agreement(now)

    def _check_agreement(self, now):
        if not self.election or self.live_count == 0:
            return
        candidate = None
        for name in self.votes:
            if self.votes[name] == self.live_count:
                candidate = name
                break
        if candidate is not None and self.agreement_watchers:
            remaining = []
            for watcher in self.agreement_watchers:
                key, since, name = watcher
                if name is None or name == candidate:
                    self.extras[key] = now - since
                else:
                    remaining.append(watcher)
            self.agreement_watchers = remaining
        if candidate is None or candidate == self.agreed:
            return
        if self.agreed_ever and self.convergence_at is not None:
            self.leader_changes += 1
        self.agreed = candidate
        self.agreed_ever = True
        failover = self.failover_from
        if failover is not None and candidate != failover[1]:
            self.failover_ms = now - failover[0]
            self.failover_from = None

    def watch_failover(self, old_leader, now):
        """Start timing a failover away from old_leader (crashed or resigned) at now."""
        self.failover_from = (now, old_leader)

    # -- convergence watchers -------------------------------------------

    def watch_convergence(self, key, now):
        """Record extras[key] = time from now until all live nodes see all live nodes alive."""
        self.extras[key] = None
        self.converge_watchers.append([key, now])

    def watch_rejoin(self, key, target, now):
        """Record extras[key] = time from now until every live node sees target alive."""
        self.extras[key] = None
        self.rejoin_watchers.append([key, now, target])

    def check(self, now):
        """Called after every step that may change a view: fire what became true."""
        if self.good != self.live_count * (self.live_count - 1):
            if self.rejoin_watchers:
                self._check_rejoin(now)
            return
        if self.convergence_at is None and self.started == self.count:
            self.convergence_at = now
            callbacks = self.on_first_convergence
            self.on_first_convergence = []
            for callback in callbacks:
                callback(now)
            self._check_agreement(now)
        if self.converge_watchers:
            for key, since in self.converge_watchers:
                self.extras[key] = now - since
            self.converge_watchers = []
        if self.rejoin_watchers:
            self._check_rejoin(now)

    def _check_rejoin(self, now):
        remaining = []
        for watcher in self.rejoin_watchers:
            key, since, target = watcher
            if self.live[target] and self.seen_by[target] == self.live_count - 1:
                self.extras[key] = now - since
            else:
                remaining.append(watcher)
        self.rejoin_watchers = remaining

    # -- report ---------------------------------------------------------

    def detection(self):
        """(crashed_at, first_at, all_at) of the first watched crash, or Nones."""
        if not self.crash_watches:
            return None, None, None
        watch = self.crash_watches[0]
        return watch.crashed_at, watch.first_at, watch.all_at
