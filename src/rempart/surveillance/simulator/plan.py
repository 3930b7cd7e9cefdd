"""The plan: a seeded, endless sequence of actions in simulated time.

The simulated clock starts at 06:00 UTC on the hospital's reference date and moves on
by a random gap (30 s on average) before each action; at each step one scenario is
drawn by weight and asked for an action. Everything comes from one
``random.Random(seed)``, so a seed always gives the same plan, whatever the server
answers.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

from rempart.surveillance.simulator.actors import DAY_START, Cast
from rempart.surveillance.simulator.attacks import ATTACKS
from rempart.surveillance.simulator.scenarios import NORMAL_SCENARIOS, Action, Scenario
from rempart.surveillance.simulator.world import World

MEAN_GAP = 30.0
"""Simulated seconds between two actions, on average."""


def scenarios(world: World, cast: Cast, attacks: Sequence[str] = ()) -> list[Scenario]:
    """The normal scenarios and the named attacks; ``KeyError`` for an unknown attack."""
    kinds = [*NORMAL_SCENARIOS, *(ATTACKS[name] for name in attacks)]
    return [kind(world, cast) for kind in kinds]


def plan(world: World, chosen: Sequence[Scenario], seed: int) -> Iterator[Action]:
    rng = random.Random(seed)  # noqa: S311 - simulated behaviour, not security
    moment = datetime.combine(world.reference, DAY_START, UTC)
    weights = [s.weight for s in chosen]
    while True:
        moment += timedelta(seconds=rng.expovariate(1 / MEAN_GAP))
        action = rng.choices(chosen, weights)[0].action(moment, rng)
        if action is not None:
            yield action
