"""Counter-based hashed random numbers: identical output on every Python version and platform.

Python guarantees only ``random.random()`` across versions, not ``randint``/``choice``/``shuffle``, so every draw
here is ``blake2b("<key>|<k>")`` for a counter ``k``; integers use rejection sampling (no modulo bias) and floats
are ``u64 / 2**64``. A key names the stream, e.g. ``"0|S01_arith_chain|train:7|sample"``; :meth:`HashRng.child`
derives an independent stream, so adding a domain or a skeleton never changes the draws of existing ones.

>>> rng = HashRng(0, "S01", "train:0", "sample")
>>> rng.randint(1, 6) == HashRng(0, "S01", "train:0", "sample").randint(1, 6)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import blake2b
from typing import TypeVar

T = TypeVar("T")

_SPAN = 1 << 64


class HashRng:
    """A stream of deterministic draws named by ``key`` parts (joined with ``|``).

    >>> a, b = HashRng(7, "x"), HashRng(7, "x")
    >>> [a.randint(0, 9) for _ in range(4)] == [b.randint(0, 9) for _ in range(4)]
    True
    >>> sorted(HashRng(7, "y").shuffle([3, 1, 2]))
    [1, 2, 3]
    """

    __slots__ = ("_counter", "key")

    def __init__(self, *key: object) -> None:
        self.key = "|".join(str(part) for part in key)
        self._counter = 0

    def child(self, *stream: object) -> HashRng:
        """An independent stream whose key extends this one's."""
        return HashRng(self.key, *stream)

    def u64(self) -> int:
        digest = blake2b(f"{self.key}|{self._counter}".encode(), digest_size=8).digest()
        self._counter += 1
        return int.from_bytes(digest, "big")

    def random(self) -> float:
        """Uniform float in [0, 1)."""
        return self.u64() / _SPAN

    def randint(self, lo: int, hi: int) -> int:
        """Uniform integer in ``[lo, hi]`` (both inclusive)."""
        if hi < lo:
            raise ValueError(f"randint: empty range [{lo}, {hi}]")
        n = hi - lo + 1
        limit = _SPAN - (_SPAN % n)  # reject the top sliver so every residue is equally likely
        while True:
            u = self.u64()
            if u < limit:
                return lo + u % n

    def bernoulli(self, p: float) -> bool:
        return self.random() < p

    def choice(self, seq: Sequence[T]) -> T:
        if not seq:
            raise ValueError("choice from an empty sequence")
        return seq[self.randint(0, len(seq) - 1)]

    def shuffle(self, seq: Sequence[T]) -> list[T]:
        """A shuffled copy (Fisher-Yates)."""
        out = list(seq)
        for i in range(len(out) - 1, 0, -1):
            j = self.randint(0, i)
            out[i], out[j] = out[j], out[i]
        return out

    def sample(self, seq: Sequence[T], k: int) -> list[T]:
        """``k`` distinct elements in random order."""
        if k > len(seq):
            raise ValueError(f"sample: k={k} exceeds population {len(seq)}")
        return self.shuffle(seq)[:k]
