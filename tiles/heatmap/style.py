"""Heatmap colours from the data: each resolution's ramp runs through the quantiles of the
densities of the cells shown at that resolution across the city.

The breaks are read from the same city-wide cells the tiles draw (after suppression), so the
darkest and brightest hexagons of the map are the city's real extremes, and a ramp never hinges
on a withheld cell. The style switches ramp where the resolution switches, by zoom.
"""

from __future__ import annotations

import h3
import numpy as np

from tiles.heatmap.definition import Heatmap
from tiles.heatmap.cells import CellCache

QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.97, 1.0)
COLOURS = ("#0d0887", "#6a00a8", "#b12a90", "#e16462", "#fca636", "#f7d13d", "#f0f921")  # plasma


def densities(cells: CellCache, heatmap: Heatmap, res: int, version: int) -> np.ndarray:
    city = cells.city(heatmap, res, version)
    areas = np.array([h3.cell_area(h3.int_to_str(int(c)), "km^2") for c in city.rows.cell], dtype=np.float64)
    return city.rows.value() / areas if len(areas) else np.zeros(0)


def breaks(values: np.ndarray) -> list[float]:
    """Strictly increasing quantile breaks (MapLibre's interpolate needs them so)."""
    if not len(values):
        return []
    out: list[float] = []
    for q in np.quantile(values, QUANTILES).tolist():
        q = float(f"{q:.6g}")
        if not out or q > out[-1]:
            out.append(q)
    return out


def _ramp(stops: list[float]):
    if len(stops) < 2:
        return COLOURS[len(COLOURS) // 2]
    # spread the ramp's colours over however many distinct breaks there are
    picks = np.linspace(0, len(COLOURS) - 1, len(stops)).round().astype(int)
    expression: list = ["interpolate", ["linear"], ["get", "density"]]
    for value, pick in zip(stops, picks):
        expression += [value, COLOURS[pick]]
    return expression


def paint(cells: CellCache, heatmap: Heatmap, version: int) -> tuple[dict, dict]:
    """The fill paint of a heatmap layer and its metadata (the breaks per resolution); computed
    once per data version."""
    key = ("paint", heatmap.id, heatmap.layer.zoom.min, heatmap.layer.zoom.max)
    found = cells.derived.get(key)
    if found is not None and found[0] == version:
        return found[1]
    result = _paint(cells, heatmap, version)
    cells.derived[key] = (version, result)
    return result


def _paint(cells: CellCache, heatmap: Heatmap, version: int) -> tuple[dict, dict]:
    zoom = heatmap.layer.zoom
    by_res: dict[int, list[float]] = {}
    steps: list = []
    for z in range(zoom.min, zoom.max + 1):
        res = heatmap.resolution(z)
        if res not in by_res:
            by_res[res] = breaks(densities(cells, heatmap, res, version))
            ramp = _ramp(by_res[res])
            steps += [ramp] if not steps else [z, ramp]
    colour = steps[0] if len(steps) == 1 else ["step", ["zoom"], *steps]
    meta = {
        "onemap:quantiles": list(QUANTILES),
        "onemap:breaks": {str(res): b for res, b in by_res.items()},
        "onemap:resolutions": {str(z): heatmap.resolution(z) for z in range(zoom.min, zoom.max + 1)},
        "onemap:value": "density",
    }
    return {**heatmap.layer.style.paint, "fill-color": colour}, meta
