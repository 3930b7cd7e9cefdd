"""App factory for multi-worker uvicorn: settings are read from the environment."""

from __future__ import annotations

from starlette.types import ASGIApp

from rempart.config import load_settings
from rempart.web.app import create_app


def app_from_env() -> ASGIApp:
    return create_app(load_settings())
