"""Rempart without its audit, for ``bench/audit.py`` only: the same application, data
and settings, gateway included, recording nothing (``create_app(..., audit=False)``)."""

from __future__ import annotations

from starlette.types import ASGIApp

from rempart.config import load_settings
from rempart.web import create_app


def build() -> ASGIApp:
    return create_app(load_settings(), audit=False)
