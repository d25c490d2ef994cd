"""Every bad input is refused before the run: exit status 2, one line on stderr naming the input,
nothing written. One test per class of input (scenario files, config files, output paths,
traces, loads, flags, the environment, stores); each class is tried on every command it reaches.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagafsm.cli import main

SMALL = ["--sagas", "20", "--seed", "1"]
TWO_STEP = Path(__file__).parent / "data" / "two_step_scenario.py"
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
FEW = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


def refused(argv: Sequence[str], capsys: pytest.CaptureFixture[str], *names: str) -> str:
    """Run a command line that must be refused; its one line of stderr, which names ``names``."""
    status = main(list(argv))
    _, err = capsys.readouterr()
    assert status == 2, (status, err)
    assert len(err.splitlines()) == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    for name in names:
        assert name in err, (name, err)
    return err


def files_in(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


# -- scenario files -----------------------------------------------------------------------------

BROKEN_SCENARIOS = {
    "syntax_error.py": ("def scenario(:\n", "does not import"),
    "missing_module.py": ("import no_such_module_anywhere\n", "no_such_module_anywhere"),
    "raises.py": ("def scenario():\n    raise RuntimeError('boom')\n", "RuntimeError: boom"),
    "wants_argument.py": ("def scenario(size):\n    return None\n", "must take no arguments"),
    "exits.py": ("import sys\nsys.exit(3)\n", "sys.exit(3)"),
    "exits_in_scenario.py": ("import sys\ndef scenario():\n    sys.exit(3)\n", "SystemExit"),
    "import_time_error.py": ("x = 1 / 0\n", "ZeroDivisionError"),
    "not_a_scenario.py": ("def scenario():\n    return 42\n", "returned int"),
    "no_function.py": ("x = 1\n", "no scenario() function"),
    "binary.py": (b"\xff\xfe\x00\x01garbage", "does not import"),
}


@pytest.mark.parametrize("name", sorted(BROKEN_SCENARIOS))
@pytest.mark.parametrize("command", ["simulate", "replay", "explore", "diagram", "run", "status"])
def test_a_scenario_file_that_does_not_load_is_refused_by_every_command(
    name: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A scenario file that does not import, or whose scenario() cannot give a Scenario (a syntax
    error, a missing module, an exception, sys.exit(3), an argument it wants): one line naming
    the file, exit 2 (not the file's 3, not a traceback), nothing written."""
    source, why = BROKEN_SCENARIOS[name]
    if command == "run" and isinstance(source, str):  # run calls runtime(), not scenario()
        source = source.replace("def scenario(", "def runtime(")
    path = tmp_path / name
    path.write_bytes(source if isinstance(source, bytes) else source.encode())
    out = tmp_path / "out"
    out.mkdir()
    argv = {
        "simulate": ["simulate", str(path), *SMALL, "--trace", str(out / "t.jsonl"),
                     "--plots", str(out / "plots")],
        "replay": ["replay", str(path), *SMALL, "--swimlane", str(out / "s.png")],
        "explore": ["explore", str(path), "--output", str(out / "plan.toml")],
        "diagram": ["diagram", str(path), "--output", str(out / "d.png")],
        "run": ["run", str(path), "--store", f"sqlite:///{out / 'store.db'}", "--sagas", "2"],
        "status": ["status", f"sqlite:///{_store(out)}", "--scenario", str(path)],
    }[command]  # fmt: skip
    before = files_in(out)
    err = refused(argv, capsys, repr(str(path)))
    if command != "run" or name not in ("no_function.py", "not_a_scenario.py"):
        assert why in err  # (run names runtime() in its own words)
    assert files_in(out) == before


def _store(directory: Path) -> Path:
    """A real store with one finished saga in it, so that status reads the scenario."""
    path = directory / "store.db"
    if not path.exists():
        import asyncio

        from sagafsm.runtime.sqlite_store import SqliteStore

        async def make() -> None:
            async with SqliteStore(path):
                pass

        asyncio.run(make())
    return path


def test_a_scenario_file_that_exits_does_not_set_the_exit_status(tmp_path: Path) -> None:
    """In a real process: a file calling sys.exit(3) on import is bad input (2), one line."""
    path = tmp_path / "exits.py"
    path.write_text("import sys\nsys.exit(3)\n")
    done = subprocess.run(
        [sys.executable, "-m", "sagafsm", "simulate", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and "exits.py" in done.stderr


# -- config files -------------------------------------------------------------------------------


@given(
    content=st.one_of(
        st.binary(min_size=1).map(lambda b: b"sagas = 10\n" + b + b"\xff\n"),
        st.sampled_from(["latin-1", "utf-16", "cp1252"]).map(
            lambda codec: "sagas = 10\n# café, naïve\n".encode(codec)
        ),
        st.text(min_size=1)
        .map(lambda t: f"[faults\n{t}")
        .map(lambda t: t.encode("utf-8", "surrogatepass")),
    )
)
@FEW
def test_a_config_file_that_is_not_utf8_toml_is_refused(
    content: bytes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Binary, Latin-1 or broken TOML in --config (simulate and replay): one line, exit 2."""
    directory = tmp_path_factory.mktemp("config")
    config = directory / "c.toml"
    config.write_bytes(content)
    for command in (["simulate", "order_fulfillment"], ["replay", "order_fulfillment"]):
        argv = [*command, "--config", str(config), "--sagas", "5"]
        if command[0] == "simulate":
            argv += ["--trace", str(directory / "t.jsonl")]
        status, err = _in_process(argv)
        assert status == 2, err
        assert len(err.splitlines()) == 1 and "c.toml" in err
        assert files_in(directory) == ["c.toml"]


NUMERIC_KEYS = (
    "sagas",
    "faults.loss",
    "faults.duplicate",
    "participant.failure_rate",
    "load.arrival_rate",
    "step_timeout",
    "termination_bound",
    "retention",
)
JUNK_VALUES = st.one_of(
    st.text(max_size=6),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["x", "loss"]), st.integers(), min_size=1, max_size=1),
    st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False),
)


@given(key=st.sampled_from(NUMERIC_KEYS), value=JUNK_VALUES)
@FEW
def test_a_config_value_of_the_wrong_kind_is_refused_naming_its_key(
    key: str, value: object, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A number key holding text, a boolean, a list, a table or a negative number: one line
    that names the key, exit 2, nothing written."""
    import tomli_w

    directory = tmp_path_factory.mktemp("values")
    *tables, leaf = key.split(".")
    data: dict[str, object] = {leaf: value}
    for table in reversed(tables):
        data = {table: data}
    (directory / "c.toml").write_text(tomli_w.dumps(data))
    argv = ["simulate", "order_fulfillment", "--config", str(directory / "c.toml"),
            "--trace", str(directory / "t.jsonl")]  # fmt: skip
    status, err = _in_process(argv)
    assert status == 2, err
    assert len(err.splitlines()) == 1 and leaf in err
    assert files_in(directory) == ["c.toml"]


def _in_process(argv: list[str]) -> tuple[int, str]:
    """main() with stderr captured by hand (Hypothesis tests cannot take capsys)."""
    import contextlib
    import io

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        status = main(argv)
    return status, err.getvalue()


# -- output paths -------------------------------------------------------------------------------


def _unwritable(tmp_path: Path) -> Path:
    """A real directory this process cannot create files in."""
    if not ROOT:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        return locked
    if not Path("/proc/self").is_dir():
        pytest.skip("running as root (chmod does not stop root) and no /proc to write into")
    return Path("/proc")  # root cannot create files there either


OUTPUTS = {
    "plots under a file": (["simulate", "order_fulfillment", *SMALL, "--plots", "{file}/plots"]),
    "plots is a file": (["simulate", "order_fulfillment", *SMALL, "--plots", "{file}"]),
    "plots unwritable": (["simulate", "order_fulfillment", *SMALL, "--plots", "{locked}/p"]),
    "trace in a missing dir": (
        ["simulate", "order_fulfillment", *SMALL, "--trace", "{missing}/t.jsonl"]
    ),
    "trace under a file": (["simulate", "order_fulfillment", *SMALL, "--trace", "{file}/t.jsonl"]),
    "trace is a dir": (["simulate", "order_fulfillment", *SMALL, "--trace", "{dir}"]),
    "trace unwritable": (["simulate", "order_fulfillment", *SMALL, "--trace", "{locked}/t.jsonl"]),
    "trace fine, plots bad": (
        ["simulate", "order_fulfillment", *SMALL, "--trace", "{dir}/t.jsonl", "--plots", "{file}"]
    ),
    "swimlane in a missing dir": (
        ["replay", "order_fulfillment", *SMALL, "--swimlane", "{missing}/s.png"]
    ),
    "swimlane unwritable": (
        ["replay", "order_fulfillment", *SMALL, "--swimlane", "{locked}/s.png"]
    ),
    "explore output unwritable": (["explore", "order_fulfillment", "--output", "{locked}/p.toml"]),
    "explore output under a file": (["explore", "order_fulfillment", "--output", "{file}/p.toml"]),
    "diagram output unwritable": (["diagram", "saga", "--output", "{locked}/d.png"]),
    "diagram output under a file": (["diagram", "order_fulfillment", "-o", "{file}/d.png"]),
}


@pytest.mark.parametrize("case", sorted(OUTPUTS))
def test_an_output_path_that_cannot_be_written_is_refused_before_the_run(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--plots, --trace, --swimlane, explore and diagram --output: a path under a regular file,
    in a missing or unwritable directory, or a directory where a file goes: exit 2 before the
    run (not a traceback after it, not exit 1), one line naming the flag, nothing written."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "afile").write_text("not a directory\n")
    (work / "adir").mkdir()
    places = {
        "file": str(work / "afile"),
        "dir": str(work / "adir"),
        "missing": str(work / "missing"),
    }
    argv = OUTPUTS[case]
    if any("{locked}" in a for a in argv):
        places["locked"] = str(_unwritable(tmp_path))
    argv = [a.format(**places) for a in argv]
    flag = "--plots" if case.startswith(("plots", "trace fine")) else argv[-2]
    flag = "--output" if flag == "-o" else flag
    before = files_in(work)
    refused(argv, capsys, flag)
    assert files_in(work) == before


@pytest.mark.parametrize("which", ["config", "scenario"])
def test_an_output_that_would_overwrite_an_input_is_refused(
    which: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """simulate --trace onto its own --config file (or scenario file) would have replaced it."""
    config = tmp_path / "c.toml"
    config.write_text("sagas = 5\n")
    scenario = tmp_path / "mine.py"
    scenario.write_text(TWO_STEP.read_text())
    target = config if which == "config" else scenario
    before = target.read_bytes()
    refused(["simulate", str(scenario), "--config", str(config), "--trace", str(target)], capsys,
            "--trace", str(target))  # fmt: skip
    assert target.read_bytes() == before


def test_outputs_are_moved_into_place_only_once_every_one_was_produced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run whose figures fail after its trace was written leaves neither (the trace used to be
    renamed into place first): here the scenario's name makes the figures' file names invalid."""
    source = tmp_path / "slashed.py"
    source.write_text(
        "import importlib.util, attrs\n"
        f"spec = importlib.util.spec_from_file_location('two_step', {str(TWO_STEP)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "def scenario():\n"
        "    return attrs.evolve(module.scenario(), name='no/such/dir')\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    status = main(
        ["simulate", str(source), *SMALL, "--trace", str(out / "t.jsonl"),
         "--plots", str(out / "plots")]
    )  # fmt: skip
    assert status == 3  # the figures failed: an internal error, and no output at all
    assert files_in(out) == []
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.slow
def test_every_output_is_written_when_the_run_succeeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The staging does its job: trace (with what it was recorded under) and figures in place,
    no temporary file left, plots created at any depth."""
    trace, plots = tmp_path / "t.jsonl", tmp_path / "a" / "b" / "plots"
    assert main(["simulate", "travel_booking", *SMALL, "--trace", str(trace),
                 "--plots", str(plots)]) == 0  # fmt: skip
    last = json.loads(trace.read_text().splitlines()[-1])
    assert last["kind"] == "recorded" and last["scenario"] == "travel_booking"
    assert last["seed"] == 1 and last["sagas"] == 20
    assert len(list(plots.glob("*.png"))) >= 4
    assert not [p for p in tmp_path.rglob("*") if ".partial" in p.name or p.name.startswith(".")]
    assert oct(trace.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode


# -- traces -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def travel_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trace") / "travel.jsonl"
    assert main(["simulate", "travel_booking", *SMALL, "--trace", str(path), "--json"]) == 0
    return path


def test_replaying_a_trace_under_another_scenario_is_refused(
    travel_trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trace recorded under travel_booking, replayed as order_fulfillment, used to report false
    violations: refused, naming the trace and the scenario it was recorded under; an older trace
    (without that line) is refused from the definitions its sagas ran."""
    capsys.readouterr()
    err = refused(["replay", "order_fulfillment", "--trace", str(travel_trace)], capsys,
                  str(travel_trace), "'travel_booking'")  # fmt: skip
    assert "recorded under scenario 'travel_booking'" in err
    old = tmp_path / "old.jsonl"
    old.write_text("".join(travel_trace.read_text().splitlines(keepends=True)[:-1]))
    refused(["replay", "order_fulfillment", "--trace", str(old)], capsys, str(old),
            "'travel_booking'")  # fmt: skip


def test_an_older_trace_without_its_recording_line_still_replays(
    travel_trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Traces written before the recorded-under line existed stay readable, and are checked."""
    old = tmp_path / "old.jsonl"
    old.write_text("".join(travel_trace.read_text().splitlines(keepends=True)[:-1]))
    capsys.readouterr()
    assert main(["replay", "--trace", str(old), "--saga", "s3"]) == 0
    out = capsys.readouterr().out
    assert "finish" in out and "not checked" not in out


def test_run_flags_given_with_a_trace_are_refused(
    travel_trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """replay --trace with --sagas/--seed/--loss: those change a re-run, not a trace; they were
    silently ignored."""
    capsys.readouterr()
    refused(["replay", "--trace", str(travel_trace), "--seed", "0", "--loss", "0.1"], capsys,
            "--seed", "--loss")  # fmt: skip


@given(
    lines=st.lists(
        st.one_of(
            st.just("{not json"),
            st.builds(json.dumps, st.one_of(st.integers(), st.lists(st.integers()), st.text())),
            st.builds(lambda k: json.dumps({"kind": k, "t": 0}), st.text(max_size=8)),
            st.just(json.dumps({"t": "soon", "kind": "start", "saga": "s0"})),
        ),
        min_size=1,
        max_size=4,
    )
)
@FEW
def test_a_file_that_is_not_a_trace_is_refused(
    lines: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Junk lines in --trace (not JSON, JSON that is not a record): one line, exit 2."""
    path = tmp_path_factory.mktemp("junk") / "junk.jsonl"
    path.write_text("\n".join(lines) + "\n")
    status, err = _in_process(["replay", "--trace", str(path)])
    assert status == 2, err
    assert len(err.splitlines()) == 1 and "junk.jsonl" in err


# -- explore ------------------------------------------------------------------------------------


def test_explore_leaves_no_hypothesis_directory_behind(tmp_path: Path) -> None:
    """Run in a user's directory, explore used to leave ./.hypothesis there (a real process: the
    directory Hypothesis would use is fixed when it is imported)."""
    done = subprocess.run(
        [sys.executable, "-m", "sagafsm", "explore", "order_fulfillment", "--max-examples", "5",
         "--sagas", "1"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []


@given(budget=st.one_of(st.floats(max_value=0), st.just(float("nan")), st.just(float("inf"))))
@FEW
def test_explore_refuses_a_time_budget_that_is_not_a_positive_duration(budget: float) -> None:
    """--time-budget 0, -1, nan, inf: one line, exit 2."""
    status, err = _in_process(["explore", "order_fulfillment", f"--time-budget={budget}"])
    assert status == 2 and len(err.splitlines()) == 1 and "--time-budget" in err


def test_explore_stops_when_its_time_budget_is_spent(capsys: pytest.CaptureFixture[str]) -> None:
    """A budget spent before the first plan: the search says so instead of running on."""
    assert main(["explore", "order_fulfillment", "--time-budget", "1e-9"]) == 0
    assert "within the 1e-09 s time budget" in capsys.readouterr().out


# -- loads, jobs --------------------------------------------------------------------------------


@given(
    sagas=st.integers(100_001, 10**15),
    kind=st.sampled_from(["burst", "closed"]),
)
@FEW
def test_a_load_that_cannot_fit_in_memory_is_refused(sagas: int, kind: str) -> None:
    """--sagas 10**12 with a burst (or a closed load as wide) grew until memory ran out."""
    argv = ["simulate", "order_fulfillment", "--sagas", str(sagas), "--load", kind]
    if kind == "closed":
        argv += ["--concurrency", str(sagas)]
    status, err = _in_process(argv)
    assert status == 2 and len(err.splitlines()) == 1
    assert "in flight" in err and ("config.sagas" in err or "config.load" in err)


@pytest.mark.parametrize(
    "argv",
    [["--exhaustive", "--sagas", "11"], ["--exhaustive", "--sagas", "1000"], ["--sagas", "10**9"]],
)
def test_an_exploration_too_big_for_memory_is_refused(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """explore --exhaustive materialises every pair of placements (quadratic in --sagas), and
    every explored run is a burst of --sagas: refused up front rather than run out of memory."""
    argv = [a.replace("10**9", str(10**9)) for a in argv]
    refused(["explore", "order_fulfillment", *argv], capsys, "--sagas")


@given(rate=st.floats(1e8, 1e300))
@FEW
def test_an_open_load_arriving_faster_than_memory_holds_is_refused(rate: float) -> None:
    """--arrival-rate 1e12 is a burst by another name: refused (Little's law over the shortest
    possible saga), where it grew until memory ran out."""
    argv = ["simulate", "order_fulfillment", "--sagas", str(10**12), f"--arrival-rate={rate}"]
    status, err = _in_process(argv)
    assert status == 2 and len(err.splitlines()) == 1 and "load.arrival_rate" in err


def test_jobs_beyond_what_helps_are_capped_and_said(capsys: pytest.CaptureFixture[str]) -> None:
    """--jobs 1000 for two seeds starts no more processes than seeds to run (both run on the
    pool, --repeat being a sweep over seeds), and says so."""
    assert main(["simulate", "order_fulfillment", *SMALL, "--repeat", "2", "--jobs", "1000"]) == 0
    err = capsys.readouterr().err
    useful = min(2, len(os.sched_getaffinity(0)))
    assert f"--jobs 1000 capped to {useful} (2 runs to share" in err


# -- the environment --------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec", ["bogus", "orchestrator.before_commit:x", "orchestrator.before_commit:0", "nope:1"]
)
def test_an_invalid_crash_point_in_the_environment_is_bad_input(spec: str, tmp_path: Path) -> None:
    """SAGAFSM_CRASH_AT=<junk> exited 1 (the 'violation found' status): now 2, one line, and no
    store created."""
    env = {**os.environ, "SAGAFSM_CRASH_AT": spec}
    store = tmp_path / "s.db"
    done = subprocess.run(
        [sys.executable, "-m", "sagafsm", "run", "order_fulfillment", "--store",
         f"sqlite:///{store}", "--sagas", "2"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1 and "SAGAFSM_CRASH_AT" in done.stderr
    assert list(tmp_path.iterdir()) == []


# -- every subcommand ---------------------------------------------------------------------------

EVERY_COMMAND = {
    "simulate": ["simulate", "order_fulfillment", "--loss", "2"],
    "explore": ["explore", "order_fulfillment", "--sagas", "0"],
    "replay": ["replay", "order_fulfillment", *SMALL, "--saga", "no-such-saga"],
    "selfcheck": ["selfcheck", "--mutant", "no-such-mutant"],
    "diagram": ["diagram", "no-such-lifecycle"],
    "run": ["run", "order_fulfillment", "--store", "memory://"],
    "status": ["status", "sqlite:///{tmp}/missing.db"],
    "resolve": ["resolve", "sqlite:///{tmp}/missing.db", "s1", "--note", "by hand"],
    "retry": ["retry", "sqlite:///{tmp}/missing.db", "s1"],
}


@pytest.mark.parametrize("command", sorted(EVERY_COMMAND))
def test_every_subcommand_refuses_bad_input_with_status_2(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The exit statuses are kept across subcommands: a bad input is 2 and one line for each."""
    argv = [a.format(tmp=tmp_path) for a in EVERY_COMMAND[command]]
    err = refused(argv, capsys)
    assert err.startswith(f"sagafsm {command}: error: ")
    assert files_in(tmp_path) == []
