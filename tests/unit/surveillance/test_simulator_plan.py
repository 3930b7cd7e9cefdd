"""The simulator's plan: the same seed gives the same actions, clinicians act on the
patients in their care in normal scenarios, an attack is labelled and goes outside,
and only loopback servers are accepted."""

from __future__ import annotations

from datetime import date
from itertools import islice
from pathlib import Path

import pytest

from rempart.errors import RempartError
from rempart.surveillance.simulator.accounts import account_end
from rempart.surveillance.simulator.actors import Cast, cast
from rempart.surveillance.simulator.plan import plan, scenarios
from rempart.surveillance.simulator.simulation import check_loopback
from rempart.surveillance.simulator.world import World, load_world
from rempart.synth.generator import Generator
from rempart.synth.output import write_ndjson


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    out = tmp_path_factory.mktemp("h")
    write_ndjson(Generator(30, seed=2), out, lambda n: None)
    return load_world(out)


def _summary(world: World, people: Cast, seed: int, attacks: tuple[str, ...] = ()) -> list[tuple]:
    chosen = scenarios(world, people, attacks)
    return [
        (a.moment, a.actor.name, a.scenario, a.label, a.method, a.path, a.patient, a.body)
        for a in islice(plan(world, chosen, seed), 300)
    ]


def test_the_same_seed_gives_the_same_plan(world: World) -> None:
    people = cast(world)
    assert _summary(world, people, 7) == _summary(world, cast(world), 7)
    assert _summary(world, people, 7) != _summary(world, people, 8)


def test_normal_scenarios_stay_with_the_patients_in_care(world: World) -> None:
    people = cast(world)
    actions = list(islice(plan(world, scenarios(world, people), 3), 500))
    assert {a.label for a in actions} == {"normal"}
    assert {a.scenario for a in actions} == {
        "clinical-reading", "prescribing", "vital-signs", "admissions", "lab-results",
        "patient-app",
    }  # fmt: skip
    clinical = [a for a in actions if a.actor.role in ("physician", "nurse", "intern")]
    assert clinical and all(a.patient in a.actor.care for a in clinical)
    writes = {(a.actor.role, a.method) for a in clinical if a.method != "GET"}
    assert writes == {("physician", "POST"), ("nurse", "POST")}
    departed = {a.name for a in people.departed}
    assert departed and not departed & {a.actor.name for a in actions}


def test_mass_browsing_is_labelled_and_goes_outside_care(world: World) -> None:
    people = cast(world)
    actions = list(islice(plan(world, scenarios(world, people, ("mass-browsing",)), 3), 500))
    attack = [a for a in actions if a.label == "mass-browsing"]
    assert len(attack) > 10
    assert all(a.actor.role == "nurse" and a.patient not in a.actor.care for a in attack)
    assert len({a.patient for a in attack}) > 5


def test_shifts(world: World) -> None:
    day = next(a for a in cast(world).clinicians if not a.night)
    night = next(a for a in cast(world).clinicians if a.night)
    noon = world.reference_moment().replace(hour=12)
    assert day.shift_start(noon) is not None and night.shift_start(noon) is None
    late = noon.replace(hour=23)
    assert day.shift_start(late) is None and night.shift_start(late) == late.replace(hour=18)


@pytest.mark.parametrize("url", ["http://10.0.0.1:8080", "http://example.org", "ftp://127.0.0.1"])
def test_only_loopback(url: str) -> None:
    with pytest.raises(RempartError):
        check_loopback(url)


def test_loopback_accepted() -> None:
    assert check_loopback("http://127.0.0.1:8080/fhir") == "http://127.0.0.1:8080"
    assert check_loopback("http://[::1]:9") == "http://[::1]:9"


def test_world_reads_the_roster(world: World, tmp_path: Path) -> None:
    assert len(world.patients) == 30 and world.names and world.care_of
    with pytest.raises(FileNotFoundError):
        load_world(tmp_path)


def test_contract_ends_move_to_today() -> None:
    reference, today = date(2026, 1, 15), date(2026, 11, 23)
    assert account_end(None, reference, today) is None
    assert account_end("2025-11-01", reference, today) == "2026-09-09"  # left: still past
    assert account_end("2026-05-01", reference, today) == "2027-03-09"  # still there
