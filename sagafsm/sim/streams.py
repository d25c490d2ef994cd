"""Named random streams derived from a run's seed.

Each concern (arrivals, fates, latency, message faults, each participant, crashes) draws from its
own ``random.Random``, seeded from (seed, name) by SHA-256, so adding a draw to one concern never
shifts another's.
"""

from __future__ import annotations

import hashlib
import random

__all__ = ["stream"]


def stream(seed: int, name: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))
