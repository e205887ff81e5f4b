"""The board's state file (election.term_file): the highest term and the incarnation, across restarts.

The daemon's format (agent/state.py): two lines of digits, the term then
the incarnation; a file with the term alone is read too. leaderd.py imports
this module only when the config names a file, so a board without one
spends no heap on it.

A save writes a new file and renames it over the old one. LittleFS (the
default of the Pico W and of recent ESP32 firmware) commits a file when it
is closed and renames atomically. FAT does not rename over an existing
file: the old one is removed first, and a reset at that moment leaves only
the new one under its temporary name, which ``State`` reads too.
MicroPython has no fsync: closing the file is what writes it out.
"""


class State:
    """The values in the file at path: term and saved (the incarnation, -1 if none); keep() writes them."""

    def __init__(self, path, log):
        self.path = path
        self.log = log
        self.term = 0
        self.saved = -1
        for suffix in ("", ".tmp"):
            try:
                with open(path + suffix) as handle:
                    lines = handle.read().split()
                term = int(lines[0])
                saved = int(lines[1]) if len(lines) > 1 else -1
            except (OSError, ValueError, IndexError):
                continue
            if 0 <= term <= 0xFFFFFFFF and -1 <= saved < 0xFFFFFFFF and len(lines) <= 2:
                self.term = term
                self.saved = saved
            else:
                log("warning", "ignoring %s: not a term and an incarnation" % (path + suffix))
            return

    def keep(self, term, incarnation):
        """Writes the file when term or incarnation grew (after every pump); a failed write is logged and
        not retried until a value grows again."""
        if term <= self.term and incarnation <= self.saved:
            return
        if term < self.term:
            term = self.term
        self.term = term
        self.saved = incarnation
        import os
        path = self.path
        try:
            with open(path + ".tmp", "w") as handle:
                handle.write("%d\n%d\n" % (term, incarnation))
            try:
                os.rename(path + ".tmp", path)
            except OSError:
                os.remove(path)
                os.rename(path + ".tmp", path)
        except OSError as exc:
            self.log("warning", "cannot save the term and incarnation to %s: %s" % (path, exc))
