"""Configuration and fault plans: validated, with one readable message per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagafsm import InvalidConfig
from sagafsm.sim import config_from_dict, load_config_file, parse_distribution


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"faults": {"loss": 1.5}}, "config.faults.loss: must be a probability in [0, 1]"),
        ({"faults": {"duplicate": -0.1}}, "config.faults.duplicate: must be a probability"),
        ({"load": {"arrival_rate": -3}}, "config.load.arrival_rate: must be a finite number > 0"),
        ({"faults": {"orchestrator_crash_rate": -1}}, "orchestrator_crash_rate: must be"),
        ({"faults": {"los": 0.1}}, "config.faults: unknown key 'los'"),
        ({"sagas": 0}, "config.sagas: must be at least 1"),
        ({"sagas": "many"}, "config.sagas: expected an integer"),
        ({"latency": "exp:-1"}, "config.latency: "),
        ({"latency": "gauss:1"}, "unknown distribution 'gauss'"),
        ({"step_timeout": 0}, "step_timeout: must be a finite number > 0"),
        ({"load": {"kind": "trickle"}}, "config.load.kind"),
        (
            {"faults": {"partitions": [{"participant": "payment", "start": 2, "end": 1}]}},
            "config.faults.partitions[0]: window end (1.0) must be after its start (2.0)",
        ),
    ],
)
def test_bad_values_raise_invalid_config_naming_the_key(data: dict, message: str) -> None:
    """Each problem raises InvalidConfig (a ValueError) whose message names the key."""
    with pytest.raises(InvalidConfig) as caught:
        config_from_dict(data)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert "\n" not in str(caught.value)


def test_participant_tables_only_override_what_they_name() -> None:
    """[participants.X] falls back to [participant] for every key it does not give."""
    config = config_from_dict(
        {
            "participant": {"capacity": 3, "failure_rate": 0.2},
            "participants": {"payment": {"capacity": 1}},
        }
    )
    payment = config.participant_config("payment")
    assert (payment.capacity, payment.failure_rate) == (1, 0.2)
    assert config.participant_config("inventory").capacity == 3


def test_a_toml_file_loads_and_its_errors_name_the_file(tmp_path: Path) -> None:
    """A good file loads; a syntax error and a missing file are one-line InvalidConfig errors."""
    good = tmp_path / "good.toml"
    good.write_text('sagas = 50\n[faults]\nloss = 0.1\n[load]\nkind = "closed"\n')
    config = load_config_file(good)
    assert (config.sagas, config.faults.loss, config.load.kind) == (50, 0.1, "closed")
    bad = tmp_path / "bad.toml"
    bad.write_text("sagas = = 3\n")
    with pytest.raises(InvalidConfig, match="not valid TOML"):
        load_config_file(bad)
    with pytest.raises(InvalidConfig, match="cannot read config file"):
        load_config_file(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("text", "mean"),
    [("const:0.01", 0.01), ("0.02", 0.02), ("uniform:0:0.2", 0.1), ("exp:0.005", 0.005)],
)
def test_distributions_parse_and_know_their_mean(text: str, mean: float) -> None:
    """The short distribution syntax parses to the intended distribution."""
    assert parse_distribution(text).mean == pytest.approx(mean)


def test_sampled_means_match_the_declared_means() -> None:
    """Samplers draw from the distribution they claim (mean within 3%)."""
    import random

    for text in ("uniform:0.01:0.03", "exp:0.01", "lognormal:0.01:0.5"):
        dist = parse_distribution(text)
        draw = dist.sampler(random.Random(1))
        sample = [draw() for _ in range(40_000)]
        assert sum(sample) / len(sample) == pytest.approx(dist.mean, rel=0.03)


def test_the_exp_sampler_draws_what_random_expovariate_draws() -> None:
    """The exponential sampler writes random.expovariate's formula out: bit for bit the same
    draws from the same stream (the digest of every run depends on them)."""
    import random

    sample = parse_distribution("exp:0.005").sampler(random.Random(11))
    reference = random.Random(11)
    expected = [reference.expovariate(1.0 / 0.005) for _ in range(1000)]
    assert [sample() for _ in range(1000)] == expected
