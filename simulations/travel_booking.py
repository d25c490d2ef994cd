"""Travel booking: book a flight, a hotel and a car (each cancellable), then charge the card (the
pivot: once charged, the trip goes ahead), then send the itinerary (retriable: retried until sent).

Seats, rooms and cars are finite, so bookings fail on their own when a flight, hotel or car fleet
is full. Once every saga has ended, every seat, room and car is either free again or held by a
completed trip, and the money charged is exactly the completed trips' price.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from typing import Any

from sagafsm import RetryPolicy, SagaBuilder, SagaState
from sagafsm.sim import Scenario

FLIGHTS = 30
SEATS = 5_000
HOTELS = 30
ROOMS = 5_000
CAR_FLEET = 60_000


class Capacity:
    """Units of a resource per key: a booking takes ``units`` of ``data[key_field]``."""

    def __init__(self, keys: int, capacity: int, key_field: str) -> None:
        self.free = dict.fromkeys(range(keys), capacity)
        self.held: Counter[int] = Counter()
        self.capacity = capacity
        self.key_field = key_field

    def apply(self, action: str, saga_id: str, data: Mapping[str, Any]) -> bool:
        key, units = data[self.key_field], data["travellers"]
        if self.free[key] < units:
            return False  # fully booked
        self.free[key] -= units
        self.held[key] += units
        return True

    def undo(self, compensation: str, saga_id: str, data: Mapping[str, Any]) -> None:
        key, units = data[self.key_field], data["travellers"]
        self.free[key] += units
        self.held[key] -= units


class Card:
    def __init__(self) -> None:
        self.charged = 0

    def apply(self, action: str, saga_id: str, data: Mapping[str, Any]) -> bool:
        if data["card_declined"]:
            return False
        self.charged += data["price"]
        return True

    def undo(self, compensation: str, saga_id: str, data: Mapping[str, Any]) -> None:
        raise AssertionError("the pivot payment is never compensated")


class Mailer:
    def __init__(self) -> None:
        self.sent = 0

    def apply(self, action: str, saga_id: str, data: Mapping[str, Any]) -> bool:
        self.sent += 1
        return True

    def undo(self, compensation: str, saga_id: str, data: Mapping[str, Any]) -> None:
        raise AssertionError("a retriable step is never compensated")


class TravelDomain:
    def __init__(self, rng: random.Random) -> None:
        self.flights = Capacity(FLIGHTS, SEATS, "flight")
        self.hotels = Capacity(HOTELS, ROOMS, "hotel")
        self.cars = Capacity(1, CAR_FLEET, "car_pool")
        self.card = Card()
        self.mailer = Mailer()
        self.services = {
            "airline": self.flights,
            "hotel": self.hotels,
            "car_rental": self.cars,
            "payment": self.card,
            "mailer": self.mailer,
        }
        # Exactly what completed trips hold, and at most what trips left to an operator may hold.
        self.completed: Counter[str] = Counter()
        self.unresolved: Counter[str] = Counter()

    def saga_finished(self, saga_id: str, data: Mapping[str, Any], state: SagaState) -> None:
        if state is SagaState.COMPLETED:
            totals = self.completed
        elif state is SagaState.OPERATOR_REQUIRED:
            totals = self.unresolved
        else:
            return
        travellers = data["travellers"]
        totals[f"flight {data['flight']}"] += travellers
        totals[f"hotel {data['hotel']}"] += travellers
        totals["cars"] += travellers
        totals["trips"] += 1
        totals["price"] += data["price"]

    def invariants(self) -> list[str]:
        actual = {"cars": self.cars.held[0], "price": self.card.charged, "trips": self.mailer.sent}
        for key in range(FLIGHTS):
            actual[f"flight {key}"] = self.flights.held[key]
        for key in range(HOTELS):
            actual[f"hotel {key}"] = self.hotels.held[key]
        problems = []
        for name, value in actual.items():
            low, extra = self.completed[name], self.unresolved[name]
            if not low <= value <= low + extra:
                problems.append(
                    f"{name}: {value} held or charged, completed trips account for {low}"
                    + (f" (+ up to {extra} unresolved)" if extra else "")
                )
        return problems


def make_trip(rng: random.Random) -> dict[str, Any]:
    travellers = rng.randint(1, 4)
    return {
        "flight": rng.randrange(FLIGHTS),
        "hotel": rng.randrange(HOTELS),
        "car_pool": 0,
        "travellers": travellers,
        "price": travellers * rng.randint(200, 900),
        "card_declined": rng.random() < 0.03,
    }


DEFAULTS: dict[str, Any] = {
    "sagas": 3000,
    "seed": 1,
    "load": {"kind": "open", "arrival_rate": 50.0},
    "latency": "exp:0.005",
    "participant": {"failure_rate": 0.03, "hang_rate": 0.01, "compensation_failure_rate": 0.05},
    "faults": {"loss": 0.01, "duplicate": 0.02, "reorder": 0.05},
}


def scenario() -> Scenario:
    definition = (
        SagaBuilder("travel_booking", timeout=0.25)
        .step("book_flight", participant="airline", action="book_seat", compensation="cancel_seat")
        .step("book_hotel", participant="hotel", action="book_room", compensation="cancel_room")
        .step("rent_car", participant="car_rental", action="rent_car", compensation="return_car")
        .pivot(
            "charge_card",
            participant="payment",
            action="charge",
            retry=RetryPolicy(max_attempts=6, initial_backoff=0.05, max_backoff=1.0),
        )
        .retriable(
            "send_itinerary",
            participant="mailer",
            action="send_itinerary",
            retry=RetryPolicy(max_attempts=20, initial_backoff=0.05, max_backoff=1.0),
        )
        .build()
    )
    return Scenario(
        name="travel_booking",
        definition=definition,
        make_domain=TravelDomain,
        make_order=make_trip,
        description=__doc__ or "",
        defaults=DEFAULTS,
    )
