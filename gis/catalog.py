"""The layer catalog: one YAML file per layer in `layers/` is the single source of its schema.

Storage tables, OGC API resources, queryables, tiles and styles all derive from these models;
nothing about a layer is written anywhere else.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

LAYER_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")  # no dots: QGIS cannot load dotted ids


class AttrType(StrEnum):
    string = "string"
    integer = "integer"
    number = "number"
    boolean = "boolean"
    date = "date"
    datetime = "datetime"


class Sensitivity(StrEnum):
    """How much an attribute reveals about a person or a security asset.

    The access issue maps each class to a masking rule; until then anything above
    `internal` is withheld from public outputs by the catalog itself.
    """

    public = "public"
    internal = "internal"
    person_name = "person_name"
    national_id = "national_id"
    phone = "phone"
    address = "address"
    secret = "secret"


class GeometryType(StrEnum):
    Point = "Point"
    LineString = "LineString"
    Polygon = "Polygon"
    MultiPolygon = "MultiPolygon"


class Attribute(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: AttrType
    description: str
    title: str | None = None
    unit: str | None = None
    sensitivity: Sensitivity = Sensitivity.public
    enum: list[str] | None = None
    required: bool = False

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not LAYER_ID.match(value) or value in {"id", "geom", "fid"}:
            raise ValueError(f"attribute name {value!r} must be a lower-case identifier and not id/geom/fid")
        return value

    def json_schema(self) -> dict:
        types = {
            AttrType.string: {"type": "string"},
            AttrType.integer: {"type": "integer"},
            AttrType.number: {"type": "number"},
            AttrType.boolean: {"type": "boolean"},
            AttrType.date: {"type": "string", "format": "date"},
            AttrType.datetime: {"type": "string", "format": "date-time"},
        }
        schema = {"title": self.title or self.name, "description": self.description, **types[self.type]}
        if self.unit:
            schema["x-ogc-unit"] = self.unit
        if self.enum:
            schema["enum"] = list(self.enum)
        return schema


class ZoomRange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min: int = Field(ge=0, le=24)
    max: int = Field(ge=0, le=24)

    @model_validator(mode="after")
    def _ordered(self) -> "ZoomRange":
        if self.min > self.max:
            raise ValueError("zoom.min must not exceed zoom.max")
        return self


class Style(BaseModel):
    """A MapLibre layer fragment: `type` plus `paint`/`layout`, with the source filled in later."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["fill", "line", "circle", "symbol", "fill-extrusion", "heatmap"]
    paint: dict = Field(default_factory=dict)
    layout: dict = Field(default_factory=dict)


EditOperation = Literal["create", "replace", "update", "delete"]


class EditGrant(BaseModel):
    """Who may change a layer, and how: the roles, the operations, and (for updates only) the
    attributes they may touch; without `attributes` any attribute and the geometry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    roles: list[str] = Field(min_length=1)
    operations: list[EditOperation] = Field(min_length=1)
    attributes: list[str] | None = None

    @model_validator(mode="after")
    def _narrow_grants_update_only(self) -> "EditGrant":
        if self.attributes is not None and set(self.operations) != {"update"}:
            raise ValueError("a grant limited to some attributes may only allow operations: [update]")
        return self


class Editing(BaseModel):
    """OGC API - Features Part 4 on this layer (gis.edit); absent means read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    grants: list[EditGrant] = Field(default_factory=list)
    repair: bool = Field(default=False, description="repair an invalid geometry (make_valid) instead of refusing it")


class Layer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: str
    title_zh: str
    description: str
    keywords: list[str] = Field(default_factory=list)
    geometry: GeometryType
    published: bool = True
    attributes: list[Attribute]
    zoom: ZoomRange
    style: Style
    temporal: str | None = Field(default=None, description="attribute holding the feature's time, if any")
    title_field: str | None = None
    editing: Editing | None = None

    @field_validator("id")
    @classmethod
    def _layer_id(cls, value: str) -> str:
        if not LAYER_ID.match(value):
            raise ValueError(f"layer id {value!r} must be a lower-case identifier without dots")
        return value

    @model_validator(mode="after")
    def _references_exist(self) -> "Layer":
        names = [a.name for a in self.attributes]
        if len(names) != len(set(names)):
            raise ValueError(f"layer {self.id}: duplicate attribute names")
        for ref in (self.temporal, self.title_field):
            if ref is not None and ref not in names:
                raise ValueError(f"layer {self.id}: {ref!r} is not one of its attributes")
        if self.temporal and self.attr(self.temporal).type not in (AttrType.date, AttrType.datetime):
            raise ValueError(f"layer {self.id}: temporal attribute must be a date or datetime")
        for grant in self.editing.grants if self.editing else []:
            unknown = sorted(set(grant.attributes or []) - set(names))
            if unknown:
                raise ValueError(f"layer {self.id}: editing grant names unknown attributes {unknown}")
        return self

    def attr(self, name: str) -> Attribute:
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute
        raise KeyError(name)

    @cached_property
    def public_attributes(self) -> list[Attribute]:
        """Attributes that any published output may carry before role-based masking exists."""
        return [a for a in self.attributes if a.sensitivity in (Sensitivity.public, Sensitivity.internal)]


class Catalog:
    """All layers, in a stable order (the order of their files' names)."""

    def __init__(self, layers: list[Layer]):
        self._layers = {layer.id: layer for layer in layers}
        if len(self._layers) != len(layers):
            raise ValueError("two layer files declare the same id")

    @classmethod
    def load(cls, directory: Path) -> "Catalog":
        files = sorted(directory.glob("*.yml"))
        if not files:
            raise FileNotFoundError(f"no layer definitions (*.yml) in {directory}")
        layers = []
        for path in files:
            try:
                layers.append(Layer.model_validate(yaml.safe_load(path.read_text(encoding="utf-8"))))
            except Exception as err:  # the file name is what the operator needs to fix it
                raise ValueError(f"{path.name}: {err}") from err
        return cls(layers)

    def __iter__(self):
        return iter(self._layers.values())

    def __getitem__(self, layer_id: str) -> Layer:
        return self._layers[layer_id]

    def __contains__(self, layer_id: object) -> bool:
        return layer_id in self._layers

    @property
    def published(self) -> list[Layer]:
        return [layer for layer in self._layers.values() if layer.published]
