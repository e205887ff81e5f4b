"""The state file: what a node keeps across restarts (the term and its incarnation).

Two lines of decimal digits::

    42            the highest term this node has seen or claimed
    29061234      the highest incarnation it has announced

Files written before the incarnation was kept hold the first line only;
they are still read (the incarnation then counts as unknown).

Why each value matters:

- The term is a fencing token: a node that restarts must claim above every
  term it saw, or its claims would be older than ones consumers have
  already accepted.
- The incarnation orders news about a node. Others remember the last one
  they heard (alive, or left when it stopped), and ignore anything older;
  a node that started again at 0 would first have to be told about its
  earlier life and refute it. A new life starts at
  ``start_incarnation(saved)``: one above the saved value, and at least the
  seconds elapsed since 2026-01-01T00:00Z by the wall clock, so it grows
  even when the file is lost (as long as the clock is right).

The file is replaced atomically and durably (``save``): written to a
temporary file in the same directory, fsync'd, renamed over the old one,
then the directory is fsync'd, so after a crash or power cut the file holds
either the old values or the new ones, never a mix or nothing.
"""

import logging
import os
import secrets
import time

__all__ = ["read", "save", "fsync_directory", "start_incarnation", "wall_incarnation", "EPOCH_2026", "MAX_VALUE"]

log = logging.getLogger("leaderd")

# 2026-01-01T00:00:00Z in Unix time: the wall clock's share of an incarnation counts from here.
EPOCH_2026 = 1767225600
# Terms and incarnations are 32-bit on the wire (agent.core.wire).
MAX_VALUE = 0xFFFFFFFF


def _number(text):
    return int(text) if text.isdigit() and int(text) <= MAX_VALUE else None


def read(path):
    """(term, incarnation) saved in path: (0, None) when there is no file, None for a value not saved.

    An unreadable or malformed file is logged and counts as absent: the
    agent still starts (with the wall-clock incarnation and term 0).
    """
    if path is None:
        return 0, None
    try:
        with open(path) as handle:
            text = handle.read(256)
    except FileNotFoundError:
        return 0, None
    except OSError as exc:
        log.warning("cannot read the saved term and incarnation from %s: %s", path, exc)
        return 0, None
    lines = text.split()
    term = _number(lines[0]) if lines else None
    incarnation = _number(lines[1]) if len(lines) > 1 else None
    if term is None or len(lines) > 2 or (len(lines) == 2 and incarnation is None):
        log.warning("ignoring %s: not a term and an incarnation (%r)", path, text[:40])
        return 0, None
    return term, incarnation


def wall_incarnation(now_s=None):
    """Whole seconds since 2026-01-01T00:00Z by the wall clock (0 before then)."""
    now_s = time.time() if now_s is None else now_s
    return min(max(0, int(now_s) - EPOCH_2026), MAX_VALUE)


def start_incarnation(saved, now_s=None):
    """The incarnation of a new life: max(saved + 1, wall_incarnation()), within 32 bits.

    saved is None when no incarnation was kept.
    """
    after = 0 if saved is None else saved + 1
    return min(max(after, wall_incarnation(now_s)), MAX_VALUE)


def save(path, term, incarnation):
    """Replaces path with the two values, atomically and durably; OSError when it cannot."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, ".%s.%s.tmp" % (os.path.basename(path), secrets.token_hex(4)))
    data = ("%d\n%d\n" % (term, incarnation)).encode("ascii")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    # The rename itself is durable only once the directory is.
    fsync_directory(path)


def fsync_directory(path):
    """Makes the creation, rename or removal of path durable: fsyncs its directory."""
    dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
