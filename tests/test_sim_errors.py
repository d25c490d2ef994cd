"""A bug inside a run is an internal error (exit 3, one line), never a violation; a saga that
waits forever is still a finding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
import simpy

from sagafsm import IllegalTransition, InvalidConfig, SagaInstance
from sagafsm.cli import main
from sagafsm.commands import Command
from sagafsm.events import StepSucceeded
from sagafsm.sim import load_scenario, simulate
from sagafsm.sim.config import merge
from sagafsm.sim.internal import InternalError, empty_schedule
from sagafsm.sim.mutants import MUTANTS, Mutant
from sagafsm.sim.selfcheck import NO_FAULTS

TWO_STEP = Path(__file__).parent / "data" / "two_step_scenario.py"


class BrokenOnSuccess(SagaInstance):
    """An engine bug: the third step's success reply raises IllegalTransition (a RuntimeError)
    from a network callback."""

    __slots__ = ()

    def _on_action_success(
        self, index: int, event: StepSucceeded, now: float, out: list[Command]
    ) -> None:
        if index == 2:
            raise IllegalTransition("step", "succeed", "executing", f"saga {self.saga_id}")
        super()._on_action_success(index, event, now, out)


class BrokenOnStart(SagaInstance):
    """An engine bug in start(), which runs inside SimPy's arrival process: SimPy would re-raise
    a copy of it built from its args, which IllegalTransition's constructor does not take."""

    __slots__ = ()

    def start(self, now: float) -> list[Command]:
        if self.saga_id == "s3":
            raise IllegalTransition("saga", "begin", "started", f"saga {self.saga_id}")
        return super().start(now)


def broken(name: str, engine: type[SagaInstance]) -> Mutant:
    return Mutant(
        name=name, description="an engine bug", exposing={}, catches=("termination",), engine=engine
    )


@pytest.fixture
def engine_bugs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two broken engines, known to the CLI by name for the duration of a test."""
    monkeypatch.setitem(MUTANTS, "broken-on-success", broken("broken-on-success", BrokenOnSuccess))
    monkeypatch.setitem(MUTANTS, "broken-on-start", broken("broken-on-start", BrokenOnStart))


@pytest.mark.parametrize("engine", [BrokenOnSuccess, BrokenOnStart])
def test_an_engine_bug_leaves_simulate_as_an_internal_error(engine: type[SagaInstance]) -> None:
    """Not swallowed as "waiting forever", not reported as a violation: InternalError, with the
    original IllegalTransition (its traceback) attached."""
    scenario = load_scenario("order_fulfillment")
    with pytest.raises(InternalError) as caught:
        simulate(scenario, scenario.config(sagas=20), mutant=broken("bug", engine))
    error = caught.value
    assert type(error.error) is IllegalTransition and error.__cause__ is error.error
    assert str(error).startswith("IllegalTransition: saga s")
    assert "at simulated time" in str(error)


@pytest.mark.usefixtures("engine_bugs")
@pytest.mark.parametrize("mutant", ["broken-on-success", "broken-on-start"])
def test_the_cli_reports_an_internal_error_in_one_line_with_exit_3(
    capsys: pytest.CaptureFixture[str], mutant: str
) -> None:
    """Exit status 3; one line on stderr naming the exception and pointing at --debug; nothing
    on stdout, no traceback."""
    status = main(["simulate", "order_fulfillment", "--sagas", "20", "--mutant", mutant, "--json"])
    captured = capsys.readouterr()
    assert status == 3 and captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("sagafsm simulate: internal error: IllegalTransition: saga s")
    assert line.endswith("(rerun with --debug for the traceback)")


@pytest.mark.usefixtures("engine_bugs")
def test_debug_prints_the_traceback_of_the_original_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With --debug the traceback comes first (down to the broken engine), then the same line."""
    argv = ["simulate", "order_fulfillment", "--sagas", "20", "--mutant", "broken-on-start"]
    assert main([*argv, "--debug"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "in start" in err and "raise IllegalTransition" in err
    assert err.splitlines()[-1].startswith("sagafsm simulate: internal error: IllegalTransition")


def test_a_scenario_service_that_raises_is_an_internal_error_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plain RuntimeError from a service (what SimPy's empty schedule also raises) is not taken
    for an empty schedule: exit 3, naming it."""
    source = TWO_STEP.read_text().replace(
        "        self.value += 1\n", '        raise RuntimeError("the counter broke")\n', 1
    )
    path = tmp_path / "broken_scenario.py"
    path.write_text(source)
    assert main(["simulate", str(path), "--sagas", "5"]) == 3
    (line,) = capsys.readouterr().err.splitlines()
    assert "internal error: RuntimeError: the counter broke" in line


def test_bad_order_data_from_a_scenario_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A scenario whose make_order returns something that is not JSON data: exit 2, one line."""
    source = TWO_STEP.read_text().replace("make_order=lambda rng: {}", "make_order=lambda rng: {1}")
    path = tmp_path / "bad_orders.py"
    path.write_text(source)
    assert main(["simulate", str(path), "--sagas", "5"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "make_order() must return a mapping of JSON data" in line
    scenario = load_scenario(str(path))
    with pytest.raises(InvalidConfig, match="make_order"):
        simulate(scenario, scenario.config(sagas=5))


def test_a_saga_stuck_for_good_is_still_a_finding() -> None:
    """The tutorial orchestrator, whose first step fails, never finishes the saga: the run stops
    and termination reports it (a violation, not an internal error). It records no step moves,
    so the one effect its participant recorded also precedes any committed move: outbox-rule."""
    plan: dict[str, Any] = {
        "sagas": 1,
        "load": {"kind": "burst"},
        "faults": {"targeted": [{"saga": "s0", "step": "verify_customer", "fault": "fail"}]},
    }
    scenario = load_scenario("order_fulfillment")
    config = attrs.evolve(scenario.config(merge(NO_FAULTS, plan)), mutant="tutorial-orchestrator")
    result = simulate(scenario, config)
    assert result.stopped is not None
    assert result.violation_counts == {"termination": 1, "outbox-rule": 1}
    correct = simulate(scenario, attrs.evolve(config, mutant=None))
    assert correct.stopped is None and correct.outcomes["failed"] == 1


def test_only_simpys_empty_schedule_counts_as_anempty_schedule() -> None:
    """``env.run(until=...)`` with no event left is recognised; a RuntimeError raised by a
    callback (IllegalTransition is one) is not."""
    env = simpy.Environment()
    env.timeout(1.0)
    with pytest.raises(RuntimeError) as empty:
        env.run(until=env.event())
    assert empty_schedule(empty.value)

    for error in (RuntimeError("a bug"), IllegalTransition("saga", "x", "pending", "saga s0")):
        env = simpy.Environment()

        def fail(event: simpy.Event, error: Exception = error) -> None:
            raise error

        env.timeout(1.0).callbacks.append(fail)
        with pytest.raises(RuntimeError) as raised:
            env.run(until=env.event())
        assert raised.value is error and not empty_schedule(raised.value)


def test_an_internal_error_in_a_repeated_run_is_exit_3(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --repeat, the first seed's internal error ends the command: exit 3, no report."""
    monkeypatch.setitem(MUTANTS, "broken-on-start", broken("broken-on-start", BrokenOnStart))
    argv = ["simulate", "order_fulfillment", "--sagas", "20", "--repeat", "2", "--json"]
    assert main([*argv, "--mutant", "broken-on-start"]) == 3
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1


def test_a_service_exception_with_its_own_constructor_is_reported_as_itself(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SimPy cannot rebuild an exception whose constructor takes other arguments; the run keeps
    the original, raised inside a participant's own process, and names it."""
    source = TWO_STEP.read_text().replace(
        "        self.value += 1\n", "        raise Oops('counter', 7)\n", 1
    ) + (
        "\n\nclass Oops(Exception):\n"
        "    def __init__(self, what: str, code: int) -> None:\n"
        "        super().__init__(f'{what} failed with {code}')\n"
    )
    path = tmp_path / "oops_scenario.py"
    path.write_text(source)
    assert main(["simulate", str(path), "--sagas", "5"]) == 3
    (line,) = capsys.readouterr().err.splitlines()
    assert "internal error: Oops: counter failed with 7" in line


def test_a_service_result_that_is_not_json_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A service handing back a set as its result: exit 2, one line naming the service."""
    source = TWO_STEP.read_text().replace(
        'return {"count": self.value}', 'return {"count": {self.value}}', 1
    )
    path = tmp_path / "set_result.py"
    path.write_text(source)
    assert main(["simulate", str(path), "--sagas", "5"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "service's inc() returned" in line and "JSON" in line


def test_a_result_holding_a_tuple_is_matched_as_the_engine_keeps_it(tmp_path: Path) -> None:
    """A tuple in a result becomes a list in the saga; the participant's record does too, so a
    correct compensation is never refused for it."""
    source = TWO_STEP.read_text().replace(
        'return {"count": self.value}', 'return {"count": (self.value, 1)}', 1
    )
    path = tmp_path / "tuple_result.py"
    path.write_text(source)
    scenario = load_scenario(str(path))
    result = simulate(scenario, scenario.config(sagas=200, seed=1))
    assert result.outcomes["failed"] > 0  # compensations ran
    assert result.violation_counts == {}
