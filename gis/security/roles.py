"""Roles and their rights, from `layers/roles/roles.yml` (or the file `ONEMAP_ROLES_FILE` names).

A role gives each layer one right — none, aggregate, masked or full — and may override single
attributes. What a right means for an attribute follows its sensitivity class in the layer file:
`attribute_view` is the one place that decides, and every output (Features, tiles, stats,
exports) asks it.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from gis.catalog import Attribute, Catalog, Layer, Sensitivity


class Right(StrEnum):
    none = "none"
    aggregate = "aggregate"
    masked = "masked"
    full = "full"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def __ge__(self, other):  # type: ignore[override]
        return self.rank >= _rank(other)

    def __gt__(self, other):  # type: ignore[override]
        return self.rank > _rank(other)

    def __le__(self, other):  # type: ignore[override]
        return self.rank <= _rank(other)

    def __lt__(self, other):  # type: ignore[override]
        return self.rank < _rank(other)


def _rank(value) -> int:
    # every tile asks several of these: skip the enum's value lookup when it is one already
    return _RANK[value] if isinstance(value, Right) else _RANK[Right(value)]


_RANK = {Right.none: 0, Right.aggregate: 1, Right.masked: 2, Right.full: 3}

# classes a `masked` right shows masked (gis.security.masking); `secret` is absent unless full
MASKED_CLASSES = frozenset({Sensitivity.person_name, Sensitivity.national_id, Sensitivity.phone, Sensitivity.address})
PLAIN_CLASSES = frozenset({Sensitivity.public, Sensitivity.internal})
SENSITIVE_CLASSES = MASKED_CLASSES | {Sensitivity.secret}


class LayerRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    right: Right
    attributes: dict[str, Right] = Field(default_factory=dict)


class Role(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    description: str = ""
    default: Right = Right.none
    layers: dict[str, Right | LayerRule] = Field(default_factory=dict)
    indicators: dict[str, Right] = Field(default_factory=dict)
    edit: list[str] = Field(default_factory=list)
    audited: bool = False
    url_token: bool = False

    def rule(self, layer_id: str) -> LayerRule:
        # asked on every request (tiles several times): a frozen model need not be rebuilt each time
        found = self.memo.get(("rule", layer_id))
        if found is None:
            rule = self.layers.get(layer_id, self.default)
            found = self.memo[("rule", layer_id)] = rule if isinstance(rule, LayerRule) else LayerRule(right=rule)
        return found

    def right(self, layer_id: str) -> Right:
        return self.rule(layer_id).right

    @cached_property  # a plain attribute once made: private attributes cost a __getattr__ each read
    def memo(self) -> dict:
        """Room for what callers work out from this role's rights once (they never change)."""
        return {}

    def kept(self, kind, of, work):
        """`work()`, worked out once per role for `kind` (hashable) of the object `of` (a layer, a
        tileset) and kept. Keyed by identity and holding `of`, so its id stays unique; equal-looking
        objects of another catalog get their own answer."""
        key = (kind, id(of))
        found = self.memo.get(key)
        if found is None or found[0] is not of:
            found = self.memo[key] = (of, work())
        return found[1]

    def may_edit(self, layer_id: str) -> bool:
        return "*" in self.edit or layer_id in self.edit


def attribute_right(role: Role, layer: Layer, attribute: Attribute) -> Right:
    rule = role.rule(layer.id)
    return rule.attributes.get(attribute.name, rule.right)


def attribute_view(role: Role, layer: Layer) -> tuple[tuple[Attribute, bool], ...]:
    """The attributes a role sees of a layer, in layer order, each with `masked`: True when its
    value goes out through the masking rule of its class. Attributes not listed are absent."""
    if role.right(layer.id) < Right.masked:
        return ()
    return role.kept("view", layer, lambda: _view(role, layer))


def _view(role: Role, layer: Layer) -> tuple[tuple[Attribute, bool], ...]:
    shown = []
    for attribute in layer.attributes:
        right = attribute_right(role, layer, attribute)
        if right is Right.full:
            shown.append((attribute, False))
        elif right is Right.masked:
            if attribute.sensitivity in PLAIN_CLASSES:
                shown.append((attribute, False))
            elif attribute.sensitivity in MASKED_CLASSES:
                shown.append((attribute, True))
            # secret: absent
    return tuple(shown)


def is_sensitive(layer: Layer) -> bool:
    """A layer holding personal or security information: every read of it is audited."""
    return any(a.sensitivity in SENSITIVE_CLASSES for a in layer.attributes)


class Policy:
    """All roles of a deployment; built once per app (create_app) or CLI run."""

    def __init__(self, roles: dict[str, Role]):
        if "public" not in roles:
            raise ValueError("roles: a `public` role is required (it is what a request without a token gets)")
        self.roles = roles

    @classmethod
    def load(cls, path: Path, catalog: Catalog | None = None) -> "Policy":
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise FileNotFoundError(f"{path} is missing: it defines the roles (see layers/roles/roles.yml)") from None
        try:
            roles = {
                name: Role.model_validate({**(body or {}), "name": name})
                for name, body in (document.get("roles") or {}).items()
            }
        except Exception as err:
            raise ValueError(f"{path.name}: {err}") from err
        policy = cls(roles)
        if catalog is not None:
            policy.check(catalog, path.name)
        return policy

    def check(self, catalog: Catalog, source: str = "roles") -> None:
        for role in self.roles.values():
            for layer_id, rule in role.layers.items():
                if layer_id not in catalog:
                    raise ValueError(f"{source}: role {role.name} names unknown layer {layer_id!r}")
                if isinstance(rule, LayerRule):
                    names = {a.name for a in catalog[layer_id].attributes}
                    unknown = set(rule.attributes) - names
                    if unknown:
                        raise ValueError(f"{source}: role {role.name}, layer {layer_id}: no attributes {sorted(unknown)}")
            for layer_id in role.edit:
                if layer_id != "*" and layer_id not in catalog:
                    raise ValueError(f"{source}: role {role.name} may edit unknown layer {layer_id!r}")

    def role(self, name: str) -> Role:
        try:
            return self.roles[name]
        except KeyError:
            raise KeyError(f"no role {name!r}; roles are {', '.join(self.roles)}") from None


def default_roles_file(layers_dir: Path) -> Path:
    return layers_dir / "roles" / "roles.yml"
