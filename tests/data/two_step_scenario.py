"""A user's own scenario: two steps on a counter, loaded by path in the tests."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from sagafsm import SagaBuilder, SagaState
from sagafsm.sim import Scenario


class Counter:
    def __init__(self, broken_undo: bool = False) -> None:
        self.value = 0
        self.broken_undo = broken_undo

    def apply(
        self,
        action: str,
        saga_id: str,
        data: Mapping[str, Any],
        results: Mapping[str, Mapping[str, Any]],
    ) -> Mapping[str, Any]:
        self.value += 1
        return {"count": self.value}

    def undo(
        self, compensation: str, saga_id: str, data: Mapping[str, Any], result: Mapping[str, Any]
    ) -> None:
        if not self.broken_undo:
            self.value -= 1


class CounterDomain:
    def __init__(self, rng: random.Random, broken_undo: bool = False) -> None:
        self.services = {"a": Counter(broken_undo), "b": Counter(broken_undo)}
        self.completed = 0

    def saga_finished(self, saga_id: str, data: Mapping[str, Any], state: SagaState) -> None:
        self.completed += state is SagaState.COMPLETED

    def invariants(self) -> list[str]:
        return [
            f"counter {name} is {service.value}, {self.completed} sagas completed"
            for name, service in self.services.items()
            if service.value != self.completed
        ]


def scenario(broken_undo: bool = False) -> Scenario:
    definition = (
        SagaBuilder("two_step", timeout=0.1)
        .step("first", participant="a", action="inc", compensation="dec")
        .step("second", participant="b", action="inc", compensation="dec")
        .build()
    )
    return Scenario(
        name="two_step",
        definition=definition,
        make_domain=lambda rng: CounterDomain(rng, broken_undo),
        make_order=lambda rng: {},
        defaults={"participant": {"failure_rate": 0.2}},
    )
