"""What one tile is made of, independent of the path that renders it.

A `TilePlan` names the tile (grid, z, x, y) and, per layer, the detail rules and the optional
filter (a SQLAlchemy where-clause over the layer's table). Both renderers take a plan and a
budget step and return a `Rendered`; the engine owns the budget loop so both paths share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Table, and_

from gis.catalog import AttrType, Layer, Sensitivity
from gis.security.encryption import encrypted, readable
from gis.security.masking import masked
from gis.security.principal import current
from tiles.generalise import BUDGET_MAX_STEPS, BUDGET_MIN_FEATURES, Detail, budget_modulus
from tiles.matrix import BUFFER, EXTENT, Grid


@dataclass(frozen=True)
class LayerPlan:
    layer: Layer
    table: Table
    detail: Detail
    where: ColumnElement | None = None
    # who the tile is for (gis.security), fixed when the plan is made: the attributes they see
    # (masked ones flagged) and, for a caller limited to streets or grids, the rows
    view: tuple = ()

    def __post_init__(self) -> None:
        if self.view:
            return
        principal = current()
        object.__setattr__(self, "view", principal.attributes(self.layer) or ((None, False),))
        area = principal.area_clause(self.layer, self.table)
        if area is not None:
            object.__setattr__(self, "where", area if self.where is None else and_(self.where, area))

    @property
    def name(self) -> str:
        return self.layer.id

    @property
    def attributes(self) -> list[tuple[str, AttrType]]:
        return [(a.name, a.type) for a, _ in self.view if a is not None]

    @property
    def masked(self) -> tuple[tuple[str, Sensitivity], ...]:
        """Attributes that go out through their class's masking rule (gis.security.masking)."""
        return tuple((a.name, a.sensitivity) for a, is_masked in self.view if a is not None and is_masked)

    @property
    def sealed(self) -> tuple[str, ...]:
        """Attributes stored encrypted (gis.security.encryption): read through onemap_decrypt."""
        return tuple(a.name for a, _ in self.view if a is not None and encrypted(a))

    def column(self, name: str) -> ColumnElement:
        rule = dict(self.masked).get(name)
        value = readable(self.table, self.layer.attr(name))
        return value.label(name) if rule is None else masked(value, rule).label(name)


@dataclass(frozen=True)
class TilePlan:
    grid: Grid
    z: int
    x: int
    y: int
    layers: Sequence[LayerPlan]
    heat: Sequence = ()  # tiles.heatmap.render.HeatPlan: hexagon layers, rendered apart from features

    def bounds(self, buffer: float = 0.0) -> tuple[float, float, float, float]:
        return self.grid.bounds(self.z, self.x, self.y, buffer)

    @property
    def buffered(self) -> tuple[float, float, float, float]:
        """Where candidates are looked for: one unit beyond the buffer, since a point up to half a
        unit outside still snaps onto the buffer's edge; the exact cut happens in tile units."""
        return self.bounds(BUFFER + 1)

    @property
    def unit(self) -> float:
        """Ground size of one MVT unit in the grid CRS."""
        minx, _, maxx, _ = self.bounds()
        return (maxx - minx) / EXTENT


@dataclass
class Rendered:
    data: bytes
    counts: dict[str, int] = field(default_factory=dict)
    step: int = 0  # budget step taken: the tile keeps ids divisible by 2**step in its crowded layers

    @property
    def empty(self) -> bool:
        return not any(self.counts.values())


def moduli(counts: dict[str, int], step: int) -> dict[str, int]:
    """Per layer, the id modulus of a budget step (1 = keep all): crowded layers only."""
    return {name: (budget_modulus(step) if n > BUDGET_MIN_FEATURES else 1) for name, n in counts.items()}


class Budget:
    """The size budget's retries, one loop for every render path: render with `moduli`, hand the
    result to `take`; while it answers True, render again (with the next, thinner `moduli`)."""

    def __init__(self, room: int):
        self.room = room
        self.step = 0
        self.moduli: dict[str, int] = {}
        self.result: Rendered | None = None
        self._first: dict[str, int] | None = None

    def take(self, result: Rendered) -> bool:
        if self._first is None:
            self._first = result.counts  # thinning steps are worked out from the full tile's counts
        result.step = self.step
        self.result = result
        if len(result.data) <= self.room or self.step >= BUDGET_MAX_STEPS:
            return False
        self.step += 1
        self.moduli = moduli(self._first, self.step)
        return True
