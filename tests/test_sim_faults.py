"""Faults: message conservation, partitions, crashes. Every saga ends, nothing applies twice."""

from __future__ import annotations

import pytest
from simtools import effects, final_states, run


def test_messages_are_conserved_once_the_network_drains() -> None:
    """sent + duplicated copies = delivered + dropped: the run ends with nothing in flight."""
    result, _ = run(
        sagas=400,
        seed=2,
        faults__loss=0.05,
        faults__duplicate=0.1,
        faults__reorder=0.2,
        faults__orchestrator_crash_rate=0.3,
    )
    m = result.messages
    assert m["dropped"] > 0 and m["duplicated"] > 0
    assert m["sent"] + m["duplicated"] == m["delivered"] + m["dropped"]


def test_a_participant_partitioned_for_the_whole_run_fails_every_saga_cleanly() -> None:
    """No saga that needs the unreachable payment service completes, and none hangs."""
    partition = {"faults": {"partitions": [{"participant": "payment", "start": 0, "end": 1e5}]}}
    result, records = run(data=partition, quiet=True, sagas=200, seed=4)
    assert sum(result.outcomes.values()) == 200
    assert result.outcomes.get("completed", 0) == 0
    assert result.outcomes.get("unfinished", 0) == 0
    assert set(final_states(records).values()) <= {"failed", "operator_required"}
    assert result.violations == ()  # stock released: the domain invariants hold


def test_orchestrator_crashes_lose_no_saga_and_apply_no_effect_twice() -> None:
    """Crash windows mid-run: every saga ends, each ledger effect happens at most once."""
    crashes = {
        "faults": {
            "orchestrator_crashes": [{"start": 1.0, "end": 1.4}, {"start": 3.0, "end": 3.2}],
            "duplicate": 0.1,
        }
    }
    result, records = run(data=crashes, sagas=400, seed=5)
    assert result.faults["orchestrator_crash"] == 2
    recovered = [r[4] for r in records if r[1] == "restart" and r[3] == "orchestrator"]
    assert len(recovered) == 2 and sum(recovered) > 0  # sagas were reloaded from the store
    assert sum(result.outcomes.values()) == 400 and "unfinished" not in result.outcomes
    applied = {k: n for k, n in effects(records).items() if k[2] in ("action", "compensation")}
    assert max(applied.values()) == 1
    assert result.violations == ()


@pytest.mark.slow
def test_crash_rate_of_a_tenth_crashes_several_times_in_three_thousand_sagas() -> None:
    """--crash-orchestrator 0.1 (per simulated second) is frequent enough to matter."""
    result, _ = run(sagas=3000, seed=1, faults__orchestrator_crash_rate=0.1)
    assert result.faults["orchestrator_crash"] >= 3
    assert result.violations == ()


def test_a_step_that_hangs_and_lands_is_compensated() -> None:
    """A timed-out action whose effect landed is undone when the saga compensates."""
    data = {"participant": {"hang_rate": 1.0, "hang_lands": 1.0}}
    result, records = run(data=data, quiet=True, sagas=20, seed=6)
    ledger = effects(records)
    for saga, state in final_states(records).items():
        landed = ledger[(saga, "reserve_inventory", "action")]
        undone = ledger[(saga, "reserve_inventory", "compensation")]
        if state == "failed":
            assert landed == undone
    assert result.violations == ()


def test_a_command_already_sent_arrives_although_the_orchestrator_crashed() -> None:
    """Committed work is not lost: a message on the wire is delivered after its sender fell."""
    crash = {"faults": {"orchestrator_crashes": [{"start": 0.001, "end": 0.1}]}}
    result, records = run(data=crash, quiet=True, sagas=1, seed=0, load__kind="burst")
    first_send = next(r for r in records if r[1] == "send")
    delivered = [r for r in records if r[1] == "deliver" and r[3] == first_send[3]]
    assert delivered and 0.001 < delivered[0][0] < 0.1
    assert result.violations == ()


def test_overlapping_crash_windows_keep_the_orchestrator_down_until_the_last_ends() -> None:
    """Two overlapping windows are one outage, from the first start to the last end."""
    crashes = {
        "faults": {
            "orchestrator_crashes": [{"start": 0.01, "end": 0.11}, {"start": 0.05, "end": 0.15}]
        }
    }
    result, records = run(data=crashes, quiet=True, sagas=20, seed=0)
    restarts = [r[0] for r in records if r[1] == "restart" and r[3] == "orchestrator"]
    assert restarts == [0.15]
    assert result.faults["orchestrator_crash"] == 1 and result.violations == ()
