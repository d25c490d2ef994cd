"""Both run plans refuse a bad number, mutant or crash spec before anything exists, in the same
words: a flag means the same under either style."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sagafsm.errors import InvalidConfig
from sagafsm.runtime.choreography_supervisor import ChoreographyPlan
from sagafsm.runtime.plan_checks import check_counts, check_crash_specs
from sagafsm.runtime.supervisor import RunPlan

_ANY = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(-2.0, 2.0), st.text(max_size=2)
)


def _refusal(plan: Any) -> str | None:
    try:
        plan.check()
    except InvalidConfig as refused:
        return str(refused)
    return None


@settings(max_examples=200, deadline=None)
@given(sagas=_ANY, concurrency=_ANY, timeout=_ANY, kill_every=_ANY, deadline=_ANY, kills=_ANY)
def test_both_styles_refuse_the_same_counts_in_the_same_line(
    tmp_path_factory: pytest.TempPathFactory, **values: Any
) -> None:
    """Whatever the values, the orchestrated and the choreographed plan agree: both accept, or
    both refuse with the same line, and nothing is written."""
    folder = tmp_path_factory.mktemp("plan")
    store = f"sqlite:///{folder / 'never.db'}"
    orchestrated = _refusal(RunPlan(scenario="order_fulfillment", store=store, **values))
    choreographed = _refusal(ChoreographyPlan(scenario="order_fulfillment", store=store, **values))
    assert orchestrated == choreographed
    try:
        check_counts(**values)
    except InvalidConfig as refused:
        assert orchestrated == str(refused)
    else:
        assert orchestrated is None
    assert not list(Path(folder).iterdir())


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"sagas": 0}, "--sagas must be at least 1, got 0"),
        ({"sagas": True}, "--sagas must be at least 1, got True"),
        ({"concurrency": 2.0}, "--concurrency must be at least 1, got 2.0"),
        ({"timeout": 0}, "--timeout must be positive, got 0"),
        ({"kill_every": True}, "--kill-every must be positive, got True"),
        ({"deadline": -1.0}, "--deadline must be positive, got -1.0"),
        ({"kills": -1}, "kills must be an int, 0 or more, got -1"),
    ],
)
def test_each_bad_count_is_named(values: dict[str, Any], says: str) -> None:
    arguments: dict[str, Any] = {
        "sagas": 1, "concurrency": 1, "timeout": None, "kill_every": None, "deadline": None,
        "kills": 0,
    }  # fmt: skip
    with pytest.raises(InvalidConfig, match="^" + says.replace(".", r"\.") + "$"):
        check_counts(**{**arguments, **values})


@pytest.mark.parametrize("spec", ["participant.after_commit", "participant.after_commit:0",
                                  "nowhere:1", "participant.after_commit:x", ":1"])  # fmt: skip
def test_a_crash_spec_needs_a_known_point_and_a_count_of_one_or_more(spec: str) -> None:
    with pytest.raises(InvalidConfig, match=f"crash spec '{spec}': not POINT:COUNT"):
        check_crash_specs([spec], ["participant.after_commit"], "a point")
    check_crash_specs(["participant.after_commit:1"], ["participant.after_commit"], "a point")
