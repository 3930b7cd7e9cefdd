"""Who is calling: what a verified access token says (SMART App Launch 2.2, §Token)."""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    subject: str
    """The user name for user tokens, the client id for backend-services tokens."""
    is_user: bool
    client_id: str
    scopes: tuple[str, ...]
    token_id: str
    expires: float
    fhir_user: str | None = None
    """``Practitioner/ID``, ``Patient/ID``…: the FHIR resource the user is."""
    patient: str | None = None
    """The patient in context (``launch/patient``), an id."""
    family: str | None = None
    """The refresh-token family the token came from, if any."""

    @functools.cached_property
    def block_keys(self) -> tuple[str, ...]:
        """The block keys that, if any is set, make this token refused at once."""
        keys = [f"jti:{self.token_id}", f"client:{self.client_id}"]
        if self.is_user:
            keys.append(f"user:{self.subject}")
        if self.family:
            keys.append(f"fam:{self.family}")
        return tuple(keys)
