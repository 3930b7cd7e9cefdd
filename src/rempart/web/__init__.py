"""The ASGI application: composition root, gateway middleware and routes."""

from rempart.web.app import create_app

__all__ = ["create_app"]
