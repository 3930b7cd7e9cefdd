"""Attack scenarios: behaviours a detector should flag, each labelled with its name.

Adding one (departed intern, VIP snooping, credential stuffing, token replay,
exfiltration…) is one class here with ``name``, ``label`` (the same name), ``weight``
and ``action``, and one line in :data:`ATTACKS` (docs/simulator.md#attacks). They are
off unless asked for (``rempart simulate --attack NAME``).
"""

from __future__ import annotations

import random
from datetime import datetime

from rempart.surveillance.simulator.actors import Actor, Cast
from rempart.surveillance.simulator.scenarios import Action, ScenarioType, on_duty, read_record
from rempart.surveillance.simulator.world import World


class MassBrowsing:
    """A nurse on duty going through many records of patients outside her care, one
    after another (curiosity, or a stolen session harvesting records)."""

    name = label = "mass-browsing"
    weight = 2.0

    def __init__(self, world: World, cast: Cast) -> None:
        self.nurses = [a for a in cast.clinicians if a.role == "nurse"]
        self.patients = sorted(world.patients)
        self.cursor: dict[str, int] = {}

    def action(self, moment: datetime, rng: random.Random) -> Action | None:
        present = on_duty(self.nurses, moment)
        if not present:
            return None
        nurse = present[0]  # one browser per shift: the first nurse on duty
        patient = self._next_outside(nurse, rng)
        if patient is None:
            return None
        method, path = read_record(patient, rng)
        return Action(moment, nurse, self.name, self.label, method, path, patient)

    def _next_outside(self, nurse: Actor, rng: random.Random) -> str | None:
        """The next patient, in id order from a random start, not in her care."""
        outside = [p for p in self.patients if p not in set(nurse.care)]
        if not outside:
            return None
        position = self.cursor.setdefault(nurse.name, rng.randrange(len(outside)))
        self.cursor[nurse.name] = position + 1
        return outside[position % len(outside)]


ATTACKS: dict[str, ScenarioType] = {"mass-browsing": MassBrowsing}
