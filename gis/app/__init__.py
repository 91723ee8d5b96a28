"""The OneMap web service: `create_app(settings)` builds it."""


def create_app(*args, **kwargs):
    from gis.app.factory import create_app as _create_app

    return _create_app(*args, **kwargs)
