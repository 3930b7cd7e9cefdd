"""Rempart without its gateway, for ``bench/gateway.py`` only: the same application,
data and settings, with no token check, scope check, reach or rate limit on /fhir."""

from __future__ import annotations

from starlette.types import ASGIApp

from rempart.config import load_settings
from rempart.web import create_app


def build() -> ASGIApp:
    return create_app(load_settings(), gateway=False)
