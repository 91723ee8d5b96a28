"""Entry point for ASGI servers running several workers: each worker builds its own app."""

from gis.app.factory import create_app
from gis.settings import Settings


def app_factory():
    return create_app(Settings.from_env())
