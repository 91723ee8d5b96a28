"""OneMap's API description (/openapi): every route the server answers, per role, readable offline."""

from gis.openapi.document import ApiDocument

__all__ = ["ApiDocument"]
