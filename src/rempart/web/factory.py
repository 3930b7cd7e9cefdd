"""App factory for multi-worker uvicorn: settings are read from the environment."""

from __future__ import annotations

from starlette.applications import Starlette

from rempart.config import load_settings
from rempart.web.app import create_app


def app_from_env() -> Starlette:
    return create_app(load_settings())
