"""Who is asking: the principal of the current request, carried in a context variable.

The auth middleware (gis.security.middleware) sets it for each request; code below a route
reads it with `current()`. pygeoapi runs in executor threads, which do not inherit context:
gis.ogc.routes copies it into the call. Without any principal set (CLI tools, library use), a
request is the anonymous public of the configured roles file: the safe default.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache

from sqlalchemy import ColumnElement, Table, or_

from gis.catalog import Attribute, Layer
from gis.security.roles import Policy, Right, Role, attribute_view


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str
    streets: frozenset[str] | None = None
    grids: frozenset[str] | None = None
    token_kind: str = "anonymous"  # anonymous | api_key | jwt | cli
    rights: Role = field(default=None, compare=False, repr=False)  # type: ignore[assignment]
    # the departments whose cases the holder handles (gis.cases: a `department` scope); no rows hidden
    departments: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.rights is None:
            object.__setattr__(self, "rights", _shipped_policy().role(self.role))

    # -- layers ------------------------------------------------------------------------------------

    def right(self, layer_id: str) -> Right:
        return self.rights.right(layer_id)

    def may_see_layer(self, layer_id: str) -> bool:
        """Anything at all of the layer: at least its aggregates."""
        return self.right(layer_id) >= Right.aggregate

    def may_read_features(self, layer_id: str) -> bool:
        """Its features (Features API, tiles, exports): masked or full."""
        return self.right(layer_id) >= Right.masked

    def individual_access(self, layer_id: str) -> bool:
        """Whether aggregates may show groups smaller than k: only to roles that see the features."""
        return self.right(layer_id) >= Right.masked

    def may_edit(self, layer_id: str) -> bool:
        return self.may_read_features(layer_id) and self.rights.may_edit(layer_id)

    def may_use_indicator(self, indicator_id: str, layer_id: str) -> bool:
        override = self.rights.indicators.get(indicator_id)
        if override is not None and override is Right.none:
            return False
        return self.may_see_layer(layer_id)

    def attributes(self, layer: Layer) -> tuple[tuple[Attribute, bool], ...]:
        """(attribute, masked) pairs the principal sees of the layer; see roles.attribute_view."""
        return attribute_view(self.rights, layer)

    # -- areas -------------------------------------------------------------------------------------

    @property
    def restricted(self) -> bool:
        return self.streets is not None or self.grids is not None

    def area_clause(self, layer: Layer, table: Table) -> ColumnElement | None:
        """Rows inside the principal's streets or grids; None when unrestricted.

        A layer with no street or grid attribute (districts; streets for a grid-only principal)
        is context, not data about a place: it stays whole.
        """
        if not self.restricted:
            return None
        names = {a.name for a in layer.attributes}
        clauses = []
        street_column = "street" if "street" in names else ("code" if layer.id == "streets" else None)
        grid_column = "grid" if "grid" in names else ("grid_code" if layer.id == "grids" else None)
        if self.streets is not None and street_column:
            clauses.append(table.c[street_column].in_(sorted(self.streets)))
        if self.grids is not None and grid_column:
            clauses.append(table.c[grid_column].in_(sorted(self.grids)))
        if not clauses:
            return None
        return or_(*clauses)

    # -- caching and audit ---------------------------------------------------------------------------

    @property
    def view_key(self) -> str:
        """What cached renderings (tiles) must be keyed by: "" for the anonymous public's view."""
        if self.role == "public" and not self.restricted:
            return ""
        parts = [self.role]
        if self.streets is not None:
            parts.append("s=" + ",".join(sorted(self.streets)))
        if self.grids is not None:
            parts.append("g=" + ",".join(sorted(self.grids)))
        return "@" + ";".join(parts)

    @property
    def audited(self) -> bool:
        """Every request under this principal's token goes to the audit log."""
        return self.rights.audited and self.token_kind != "anonymous"


_current: ContextVar[Principal | None] = ContextVar("onemap_principal", default=None)


def current() -> Principal:
    principal = _current.get()
    return principal if principal is not None else anonymous()


@contextmanager
def use(principal: Principal) -> Iterator[Principal]:
    token = _current.set(principal)
    try:
        yield principal
    finally:
        _current.reset(token)


def set_current(principal: Principal):
    """For middleware: set and get the token to reset with `reset(token)`."""
    return _current.set(principal)


def reset(token) -> None:
    _current.reset(token)


def anonymous(policy: Policy | None = None) -> Principal:
    if policy is None:
        return _shipped_anonymous()
    return Principal("anonymous", "public", token_kind="anonymous", rights=policy.role("public"))


def for_role(
    policy: Policy, role: str, subject: str | None = None, streets=None, grids=None, token_kind: str = "cli",
    departments=None,
) -> Principal:
    return Principal(
        subject or role,
        role,
        None if streets is None else frozenset(streets),
        None if grids is None else frozenset(grids),
        token_kind,
        policy.role(role),
        None if departments is None else frozenset(departments),
    )


@lru_cache(maxsize=1)
def _shipped_policy() -> Policy:
    """The configured roles file (ONEMAP_ROLES_FILE, else layers/roles/roles.yml), read on first use."""
    from gis.settings import ServerSettings

    return Policy.load(ServerSettings().roles_path)


@lru_cache(maxsize=1)
def _shipped_anonymous() -> Principal:
    return Principal("anonymous", "public", token_kind="anonymous", rights=_shipped_policy().role("public"))
