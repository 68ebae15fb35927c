"""Which of several service addresses (``uplink.urls``) the next connect tries: a site can run
its gateways without a balancer.

The protocol builds its URL (path, query) from the first address; ``with_origin`` moves it to
another's scheme, host and port, so every address is the same service. After a failed connect or
a drop the next attempt goes elsewhere — the one that failed is the likeliest to fail again — in
list order (``ordered``) or at random among the others (``random``, which spreads rooms over
gateways); after a planned reconnect it stays. The backoff is the uplink's, unchanged.
"""

from __future__ import annotations

import random
from typing import Protocol, Sequence
from urllib.parse import urlsplit, urlunsplit

ORDERS = ("ordered", "random")


class Rng(Protocol):
    """What ``next_address`` draws with: the ``random`` module itself, or a seeded ``random.Random``."""

    def randrange(self, stop: int, /) -> int: ...

    def choice(self, seq: Sequence[int], /) -> int: ...


def next_address(previous: int | None, failed: bool, count: int, order: str, rng: Rng = random) -> int:
    """The index of the address to try next; ``previous`` None: the first connect."""
    if previous is None:
        return rng.randrange(count) if order == "random" else 0
    if not failed or count == 1:
        return previous
    if order == "random":
        return rng.choice([i for i in range(count) if i != previous])
    return (previous + 1) % count


def with_origin(url: str, address: str) -> str:
    """``url`` with the scheme, host and port of ``address``."""
    target, origin = urlsplit(url), urlsplit(address)
    return urlunsplit((origin.scheme, origin.netloc, target.path, target.query, target.fragment))
