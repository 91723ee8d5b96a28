"""The indicator registry (`layers/indicators.yml`): each of the city's numbers defined once.

An indicator names its source layer, what it measures (a count, or the sum of an attribute) and
an optional CQL2 filter the city wrote; `/stats`, the wall's KPIs and heatmaps all read it.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gis.catalog import AttrType, Catalog, Layer
from gis.features import cql


class Indicator(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    name: str
    name_zh: str
    definition: str
    unit: str
    layer: str
    measure: str = "count"
    filter: str | None = None
    owner: str
    suppress: bool = False

    @field_validator("measure")
    @classmethod
    def _measure(cls, value: str) -> str:
        if value != "count" and not value.startswith("sum:"):
            raise ValueError("measure must be 'count' or 'sum:<attribute>'")
        return value

    @property
    def summed(self) -> str | None:
        return self.measure.split(":", 1)[1] if self.measure.startswith("sum:") else None

    def describe(self) -> dict:
        return self.model_dump()


class Indicators:
    def __init__(self, indicators: list[Indicator], catalog: Catalog):
        self._by_id = {i.id: i for i in indicators}
        if len(self._by_id) != len(indicators):
            raise ValueError("indicators.yml: two indicators share an id")
        for indicator in indicators:
            _check(indicator, catalog)

    @classmethod
    def load(cls, path: Path, catalog: Catalog) -> "Indicators":
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        try:
            return cls([Indicator.model_validate(i) for i in document["indicators"]], catalog)
        except Exception as err:
            raise ValueError(f"{path.name}: {err}") from err

    def __iter__(self):
        return iter(self._by_id.values())

    def get(self, indicator_id: str) -> Indicator | None:
        return self._by_id.get(indicator_id)


def _check(indicator: Indicator, catalog: Catalog) -> None:
    if indicator.layer not in catalog:
        raise ValueError(f"indicator {indicator.id}: no layer {indicator.layer!r}")
    layer: Layer = catalog[indicator.layer]
    summed = indicator.summed
    if summed is not None:
        try:
            kind = layer.attr(summed).type
        except KeyError:
            raise ValueError(f"indicator {indicator.id}: {layer.id} has no attribute {summed!r}") from None
        if kind not in (AttrType.integer, AttrType.number):
            raise ValueError(f"indicator {indicator.id}: {summed} is not numeric")
    if indicator.filter:
        cql.validate(cql.parse_filter(indicator.filter), layer, trusted=True)
