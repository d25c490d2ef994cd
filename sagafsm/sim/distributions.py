"""Random distributions for latencies and service times, written as short strings.

``const:0.01``, ``uniform:0.005:0.02``, ``exp:0.01`` (mean 0.01), ``lognormal:0.01:0.5`` (median
0.01, shape sigma 0.5). All values are seconds of simulated time. A bare number means ``const``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import attrs

from ..errors import InvalidConfig

__all__ = ["Distribution", "parse_distribution"]

_ARITY = {"const": 1, "uniform": 2, "exp": 1, "lognormal": 2}


@attrs.frozen
class Distribution:
    kind: str
    params: tuple[float, ...]

    def __attrs_post_init__(self) -> None:
        if self.kind not in _ARITY:
            raise InvalidConfig(f"unknown distribution {self.kind!r} (known: {', '.join(_ARITY)})")
        if len(self.params) != _ARITY[self.kind]:
            raise InvalidConfig(
                f"distribution {self.kind!r} takes {_ARITY[self.kind]} "
                f"parameter{'s' if _ARITY[self.kind] > 1 else ''}, "
                f"got {len(self.params)}"
            )
        if not all(math.isfinite(p) and p >= 0 for p in self.params):
            raise InvalidConfig(f"{self}: parameters must be finite and >= 0")
        if self.kind == "uniform" and self.params[0] > self.params[1]:
            raise InvalidConfig(f"{self}: low must not exceed high")
        if self.kind in ("exp", "lognormal") and self.params[0] <= 0:
            raise InvalidConfig(f"{self}: the mean (or median) must be > 0")

    def __str__(self) -> str:
        return ":".join([self.kind, *(f"{p:g}" for p in self.params)])

    @property
    def mean(self) -> float:
        p = self.params
        if self.kind == "const":
            return p[0]
        if self.kind == "uniform":
            return (p[0] + p[1]) / 2
        if self.kind == "exp":
            return p[0]
        return p[0] * math.exp(p[1] ** 2 / 2)

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        """A zero-argument function drawing from this distribution with ``rng``."""
        p = self.params
        if self.kind == "const":
            value = p[0]
            return lambda: value
        if self.kind == "uniform":
            low, high = p
            uniform = rng.uniform
            return lambda: uniform(low, high)
        if self.kind == "exp":
            rate = 1.0 / p[0]
            uniform01, log = rng.random, math.log
            # random.expovariate(rate) written out (its formula in every supported Python), one
            # Python call fewer per message and per operation
            return lambda: -log(1.0 - uniform01()) / rate
        mu, sigma = math.log(p[0]), p[1]
        lognormvariate = rng.lognormvariate
        return lambda: lognormvariate(mu, sigma)


def parse_distribution(text: str | float | int) -> Distribution:
    """``"exp:0.01"`` -> Distribution('exp', (0.01,)). Raises InvalidConfig."""
    if isinstance(text, bool):
        raise InvalidConfig(f"not a distribution: {text!r}")
    if isinstance(text, (int, float)):
        return Distribution("const", (float(text),))
    kind, _, rest = str(text).strip().partition(":")
    if not rest:
        try:
            return Distribution("const", (float(kind),))
        except ValueError:
            raise InvalidConfig(
                f"not a distribution: {text!r} (try exp:0.01, const:0.01, uniform:0.005:0.02 or "
                "lognormal:0.01:0.5)"
            ) from None
    try:
        params = tuple(float(part) for part in rest.split(":"))
    except ValueError:
        raise InvalidConfig(f"not a distribution: {text!r}: parameters must be numbers") from None
    return Distribution(kind, params)
