"""Who may change what: the layer file's editing grants, for the caller's role.

An edit is allowed when both say yes: the role's `edit` list in the roles file (gis.security:
which layers a role may change at all) and a grant in the layer file (which operations, and for
narrow grants which attributes). Attributes the caller does not see unmasked (a staff member
sees a key place's phone as 138****1234) can be neither written nor cleared by that caller: a
replace keeps them as stored, so a masked value never overwrites the real one.
"""

from __future__ import annotations

from collections.abc import Iterable

from gis.app.problems import Problem
from gis.catalog import EditGrant, Layer, Sensitivity

ALL_OPERATIONS = ("create", "replace", "update", "delete")
_PLAIN = (Sensitivity.public, Sensitivity.internal)


def _principal():
    """The caller (gis.security), or None when the access module is not part of this build."""
    try:
        from gis.security import principal
    except ImportError:
        return None
    return principal.current()


def role_and_subject() -> tuple[str, str]:
    who = _principal()
    return ("public", "anonymous") if who is None else (who.role, who.subject)


def grants(layer: Layer, who=None) -> list[EditGrant]:
    """The layer's grants that apply to `who` (default: the current caller)."""
    if layer.editing is None:
        return []
    who = who or _principal()
    if who is None or not who.may_edit(layer.id):
        return []
    return [grant for grant in layer.editing.grants if who.role in grant.roles]


def operations(layer: Layer) -> set[str]:
    return {op for grant in grants(layer) for op in grant.operations}


def any_editable(layers: Iterable[Layer]) -> bool:
    return any(grants(layer) for layer in layers)


def writable_attributes(layer: Layer) -> set[str]:
    """Attributes the caller sees as stored, hence may write."""
    who = _principal()
    if who is None:
        return {a.name for a in layer.attributes if a.sensitivity in _PLAIN}
    return {attribute.name for attribute, masked in who.attributes(layer) if not masked}


def area_scope(layer: Layer, table):
    """Rows a caller limited to some streets or grids may write (None: any row)."""
    who = _principal()
    return None if who is None else who.area_clause(layer, table)


def allowed_methods(layer: Layer, item: bool) -> list[str]:
    ops = operations(layer)
    methods = ["GET", "HEAD", "OPTIONS"]
    if item:
        methods += [m for m, op in (("PUT", "replace"), ("PATCH", "update"), ("DELETE", "delete")) if op in ops]
    elif "create" in ops:
        methods.append("POST")
    return methods


def require(layer: Layer, operation: str, attributes: Iterable[str] = (), geometry: bool = False, item: bool = True) -> None:
    """Raise the Problem that fits when the caller may not do this (405, 401 or 403)."""
    if layer.editing is None or not any(operation in g.operations for g in layer.editing.grants):
        allow = ", ".join(allowed_methods(layer, item))
        raise Problem(
            405, f"items of {layer.id} cannot be {_PAST[operation]} through the API", "MethodNotAllowed", {"Allow": allow}
        )
    role, _ = role_and_subject()
    mine = [g for g in grants(layer) if operation in g.operations]
    if not mine:
        if role == "public":
            raise Problem(
                401, f"changing {layer.id} needs a token: send `Authorization: Bearer <token>` of a role that may edit it",
                "Unauthorized", {"WWW-Authenticate": "Bearer"},
            )
        raise Problem(403, f"role {role} may not {_VERB[operation]} items of {layer.id}", "Forbidden")
    attributes = set(attributes)
    hidden = sorted(attributes - writable_attributes(layer))
    if hidden:
        raise Problem(403, f"role {role} may not write {', '.join(hidden)} of {layer.id}: it does not see their stored values")
    for grant in mine:
        if grant.attributes is None or (not geometry and attributes <= set(grant.attributes)):
            return
    narrow = sorted({a for g in mine for a in g.attributes or []})
    what = "the geometry" if geometry else ", ".join(sorted(attributes - set(narrow)))
    raise Problem(403, f"role {role} may change only {', '.join(narrow)} of {layer.id}, not {what}", "Forbidden")


_VERB = {"create": "create", "replace": "replace", "update": "patch", "delete": "delete"}
_PAST = {"create": "created", "replace": "replaced", "update": "patched", "delete": "deleted"}
