"""Travel booking: book a flight, a hotel and a car (each cancellable), then charge the card (the
pivot: once charged, the trip goes ahead), then send the itinerary (retriable: retried until sent).

Seats, rooms and cars are finite, so bookings fail on their own when a flight, hotel or car fleet
is full. Data flows through the saga: each booking hands out its id, each cancellation cancels
that id, the charge is made for the three bookings, and the itinerary lists them with the charge.
Once every saga has ended, every seat, room and car is either free again or held by a completed
trip, the money charged is exactly the completed trips' price, and every completed trip's
itinerary lists its own bookings, still held.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from typing import Any

import attrs

from sagafsm import RetryPolicy, SagaBuilder, SagaState
from sagafsm.sim import Declined, Scenario, Service

FLIGHTS = 30
SEATS = 5_000
HOTELS = 30
ROOMS = 5_000
CAR_FLEET = 60_000

Data = Mapping[str, Any]
Result = Mapping[str, Any]
Results = Mapping[str, Result]
BOOKINGS = {"book_flight": "flight", "book_hotel": "hotel", "rent_car": "car"}
"""The booking steps, and what each one's id is called in the charge and the itinerary."""


@attrs.define
class Booking:
    saga_id: str
    key: int
    units: int


class Capacity:
    """Units of a resource per key: a booking takes ``units`` of ``data[key_field]``."""

    def __init__(self, keys: int, capacity: int, key_field: str, prefix: str) -> None:
        self.free = dict.fromkeys(range(keys), capacity)
        self.held: Counter[int] = Counter()
        self.capacity = capacity
        self.key_field = key_field
        self.prefix = prefix
        self.bookings: dict[str, Booking] = {}
        """Bookings held now, by id (a completed trip's leave once it is accounted for)."""
        self.unknown_cancellations = 0
        self._issued = 0

    def apply(self, action: str, saga_id: str, data: Data, results: Results) -> Result:
        key, units = data[self.key_field], data["travellers"]
        if self.free[key] < units:
            raise Declined("fully booked")
        self.free[key] -= units
        self.held[key] += units
        self._issued += 1
        booking_id = f"{self.prefix}-{self._issued}"
        self.bookings[booking_id] = Booking(saga_id, key, units)
        return {"booking_id": booking_id}

    def undo(self, compensation: str, saga_id: str, data: Data, result: Result) -> None:
        booking = self.bookings.pop(result["booking_id"], None)
        if booking is None:
            self.unknown_cancellations += 1  # cancelled twice: the invariants report it
            return
        self.free[booking.key] += booking.units
        self.held[booking.key] -= booking.units


def booking_ids(results: Results) -> dict[str, str] | None:
    """The id of each booking among an action's ``results``; None if one is missing."""
    ids = {name: results.get(step, {}).get("booking_id") for step, name in BOOKINGS.items()}
    return None if None in ids.values() else ids  # type: ignore[return-value]


class Card:
    def __init__(self) -> None:
        self.charged = 0
        self._issued = 0

    def apply(self, action: str, saga_id: str, data: Data, results: Results) -> Result:
        if data["card_declined"]:
            raise Declined("card declined")
        if booking_ids(results) is None:
            raise Declined("nothing to charge for: a booking id is missing")
        self.charged += data["price"]
        self._issued += 1
        return {"charge_id": f"ch-{self._issued}"}

    def undo(self, compensation: str, saga_id: str, data: Data, result: Result) -> None:
        raise AssertionError("the pivot payment is never compensated")


@attrs.define
class Itinerary:
    saga_id: str
    bookings: dict[str, str]
    charge_id: str


class Mailer:
    def __init__(self) -> None:
        self.sent = 0
        self.itineraries: dict[str, list[Itinerary]] = {}
        """Itineraries sent, by trip (a completed trip's leave once it is accounted for)."""

    def apply(self, action: str, saga_id: str, data: Data, results: Results) -> Result:
        ids = booking_ids(results)
        charge = results.get("charge_card", {}).get("charge_id")
        if ids is None or charge is None:
            raise Declined("no itinerary without every booking and the charge")
        self.sent += 1
        self.itineraries.setdefault(saga_id, []).append(Itinerary(saga_id, ids, charge))
        return {"itinerary": f"{saga_id}: {', '.join(ids.values())}, paid by {charge}"}

    def undo(self, compensation: str, saga_id: str, data: Data, result: Result) -> None:
        raise AssertionError("a retriable step is never compensated")


class TravelDomain:
    def __init__(self, rng: random.Random) -> None:
        self.flights = Capacity(FLIGHTS, SEATS, "flight", "fl")
        self.hotels = Capacity(HOTELS, ROOMS, "hotel", "ht")
        self.cars = Capacity(1, CAR_FLEET, "car_pool", "car")
        self.card = Card()
        self.mailer = Mailer()
        self.services: dict[str, Service] = {
            "airline": self.flights,
            "hotel": self.hotels,
            "car_rental": self.cars,
            "payment": self.card,
            "mailer": self.mailer,
        }
        # Exactly what completed trips hold, and at most what trips left to an operator may hold.
        self.completed: Counter[str] = Counter()
        self.unresolved: Counter[str] = Counter()
        self.flow_problems: list[str] = []

    def saga_finished(self, saga_id: str, data: Mapping[str, Any], state: SagaState) -> None:
        if state is SagaState.COMPLETED:
            totals = self.completed
            self._account_for(saga_id)
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

    def _account_for(self, saga_id: str) -> None:
        """A completed trip's itinerary must list its own bookings, still held. Checked once,
        when the trip completes; then its records are dropped, so the domain holds only what is
        still open (its memory grows with sagas in flight)."""
        itineraries = self.mailer.itineraries.pop(saga_id, [])
        if len(itineraries) != 1:
            self.flow_problems.append(
                f"completed trip {saga_id} got {len(itineraries)} itineraries, not one"
            )
        services = {"flight": self.flights, "hotel": self.hotels, "car": self.cars}
        for itinerary in itineraries:
            for name, booking_id in itinerary.bookings.items():
                booking = services[name].bookings.pop(booking_id, None)
                if booking is None or booking.saga_id != saga_id:
                    self.flow_problems.append(
                        f"the itinerary of trip {saga_id} lists {name} booking {booking_id}, "
                        + ("which is not held" if booking is None else f"{booking.saga_id}'s")
                    )

    def invariants(self) -> list[str]:
        problems = list(self.flow_problems)
        unknown = sum(c.unknown_cancellations for c in (self.flights, self.hotels, self.cars))
        if unknown:
            problems.append(f"{unknown} cancellations of bookings not held (cancelled twice?)")
        actual = {"cars": self.cars.held[0], "price": self.card.charged, "trips": self.mailer.sent}
        for key in range(FLIGHTS):
            actual[f"flight {key}"] = self.flights.held[key]
        for key in range(HOTELS):
            actual[f"hotel {key}"] = self.hotels.held[key]
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
