"""A set of names with O(1) add, remove and uniform random pick."""

from agent.core.rand import randbelow


class NameSet:
    """Names in a list plus an index, so random picks need no copying."""

    def __init__(self):
        self.names = []
        self._index = {}

    def __len__(self):
        return len(self.names)

    def __contains__(self, name):
        return name in self._index

    def add(self, name):
        """Adds name (no effect when present)."""
        if name not in self._index:
            self._index[name] = len(self.names)
            self.names.append(name)

    def discard(self, name):
        """Removes name (no effect when absent), swapping the last into its place."""
        i = self._index.pop(name, None)
        if i is None:
            return
        last = self.names.pop()
        if i < len(self.names):
            self.names[i] = last
            self._index[last] = i

    def pick(self, rng):
        """A uniformly random name, or None when empty."""
        if not self.names:
            return None
        return self.names[randbelow(rng, len(self.names))]

    def pick_distinct(self, rng, k, exclude=None):
        """Up to k distinct random names, none equal to `exclude`."""
        n = len(self.names)
        available = n - (1 if exclude is not None and exclude in self else 0)
        if k >= available:
            return [name for name in self.names if name != exclude]
        chosen = {}
        out = []
        while len(out) < k:
            name = self.names[randbelow(rng, n)]
            if name != exclude and name not in chosen:
                chosen[name] = True
                out.append(name)
        return out
