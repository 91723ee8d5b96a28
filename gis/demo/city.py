"""The demo city: a deterministic Pingdu-like city filling every layer of the catalog.

`build_demo(store, scale, seed)` lays out the town, seats and villages, partitions the city into
districts, streets and management grids along roads and round villages, then places residents,
key places, cameras and urban components, and loads each layer in one transaction. The same
(scale, seed) gives the same ids, geometries and attributes on every run and either backend.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import shapely

from gis.cases import demo as case_demo
from gis.cases.workflow import Workflow
from gis.catalog import AttrType, GeometryType, Layer
from gis.demo import layout, names, people, places, settlement
from gis.demo.layout import DISTRICTS, PRECISION_M, STREETS
from gis.storage.store import Batch, Store

GRIDS = 2_176  # at scale 1
RESIDENTS = 1_360_000
CAMERAS = 15_000
KEY_PLACES = 3_000
COMPONENTS = 200_000
BATCH_ROWS = 50_000
MIN_GRIDS = 20
# independent generators per stage: a change to one layer's recipe leaves the others alone
STAGES = {"layout": 1, "blocks": 2, "villages": 3, "admin": 4, "grids": 5, "buildings": 6, "people": 7,
          "key_places": 8, "cameras": 9, "components": 10, "other": 11, "members": 12}

Progress = Callable[[str, int, int], None]


@dataclass
class LayerData:
    geoms: np.ndarray  # lon/lat
    columns: dict[str, list]


def _rng(seed: int, stage: str) -> np.random.Generator:
    return np.random.default_rng([seed, STAGES[stage]])


def generate(scale: float = 0.05, seed: int = 42) -> dict[str, LayerData]:
    """Every layer of the demo city, in lon/lat, without ids (row k gets id k + 1)."""
    if not 0 < scale <= 10:
        raise ValueError("scale must be in (0, 10]")
    boundary = layout.city_boundary(_rng(seed, "layout"))
    blocks = settlement.make_blocks(_rng(seed, "blocks"), boundary, scale)
    rng = _rng(seed, "villages")
    villages, houses = settlement.make_villages(rng, boundary, blocks, scale)
    fp = settlement.Footprints()
    settlement.block_buildings(_rng(seed, "buildings"), blocks, fp)
    settlement.village_buildings(rng, villages, houses, fp)
    fp = fp.finish()

    atoms = np.concatenate([blocks.cells, villages.boxes]) if len(villages.x) else blocks.cells
    anchors = np.concatenate([np.stack([blocks.x, blocks.y], 1), np.stack([villages.x, villages.y], 1)])
    atom_of = np.where(fp.kind == settlement.VILLAGE, len(blocks.x) + fp.place, fp.place).astype(int)
    admin = layout.admin_areas(boundary, _rng(seed, "admin"), atoms, anchors)
    n_grids = max(MIN_GRIDS, round(GRIDS * scale))
    grid_polys, grid_street = _grids(_rng(seed, "grids"), admin, fp, atoms, anchors, atom_of, n_grids)

    # Snap to a millimetre grid: overlays leave vertices nanometres apart, which collapse into
    # self-intersections once scaled to degrees. Streets and districts are then unions of their
    # grids, so the three levels nest exactly.
    grid_polys = list(shapely.set_precision(np.array(grid_polys, dtype=object), PRECISION_M))
    grid_polys = layout.merge_fragments(grid_polys, grid_size=PRECISION_M)  # snapping can pinch a grid in two
    admin.streets = [
        shapely.union_all([grid_polys[g] for g in np.flatnonzero(grid_street == s)], grid_size=PRECISION_M)
        for s in range(len(STREETS))
    ]
    admin.districts = [
        shapely.union_all([admin.streets[i] for i, s in enumerate(STREETS) if s[2] == d], grid_size=PRECISION_M)
        for d in range(len(DISTRICTS))
    ]
    streets_ll = layout.to_lonlat(np.array([_multi(s) for s in admin.streets], dtype=object))
    grids_ll = layout.to_lonlat(np.array(grid_polys, dtype=object))
    grid_codes = _grid_codes(grid_polys, grid_street)
    street_codes = [s[0] for s in STREETS]
    street_names = [s[1] for s in STREETS]
    joiner = _Joiner(grids_ll, streets_ll, grid_street)

    # buildings: keep those wholly inside one grid (all of them, barring rounding at an edge)
    bld_ll = layout.to_lonlat(fp.polygons())
    b_grid = joiner.polygons(bld_ll)
    keep = b_grid >= 0
    fp, bld_ll, b_grid = fp.take(keep), bld_ll[keep], b_grid[keep]
    b_street = grid_street[b_grid]
    b_address = [f"平度市{street_names[s]}{a}" for s, a in zip(b_street.tolist(), fp.addr)]

    out: dict[str, LayerData] = {}
    out["districts"] = LayerData(
        layout.to_lonlat(np.array([_multi(d) for d in admin.districts], dtype=object)),
        {"code": [d[0] for d in DISTRICTS], "name": [d[1] for d in DISTRICTS], "area_km2": area_km2(admin.districts)},
    )
    out["streets"] = LayerData(
        streets_ll,
        {"code": street_codes, "name": street_names, "district": [DISTRICTS[s[2]][0] for s in STREETS],
         "area_km2": area_km2(admin.streets)},
    )
    out["grids"] = LayerData(
        grids_ll,
        {"grid_code": grid_codes, "grid_member": _grid_members(_rng(seed, "members"), len(grid_polys)),
         "street": [street_codes[s] for s in grid_street.tolist()], "area_km2": area_km2(grid_polys)},
    )
    out["buildings"] = _buildings(
        _rng(seed, "buildings"), fp, bld_ll, b_address, b_grid, b_street, grid_codes, street_codes
    )

    n_people = round(RESIDENTS * scale)
    xy, cols, building = people.residents(_rng(seed, "people"), n_people, fp, b_address)
    cols["building"] = building + 1
    cols["grid"] = [grid_codes[g] for g in b_grid[building].tolist()]
    cols["street"] = [street_codes[s] for s in b_street[building].tolist()]
    out["population"] = LayerData(_points(xy), cols)

    kp_xy, kp_cols = places.key_places(
        _rng(seed, "key_places"), round(KEY_PLACES * scale), blocks, fp, b_street, street_names
    )
    out["key_places"] = _located(joiner, kp_xy, kp_cols, grid_codes, street_codes)
    kept_places = out["key_places"]
    kp_metric = _metric(shapely.get_coordinates(kept_places.geoms))
    cam_xy, cam_cols = places.cameras(_rng(seed, "cameras"), round(CAMERAS * scale), blocks, villages, kp_metric,
                                      kept_places.columns, street_names)
    out["cameras"] = _located(joiner, cam_xy, cam_cols, grid_codes, street_codes)
    out["cameras"].columns["stream_url"] = places.stream_urls(np.arange(1, len(out["cameras"].geoms) + 1))
    uc_xy, uc_cols = places.components(_rng(seed, "components"), round(COMPONENTS * scale), blocks, villages)
    out["urban_components"] = _located(joiner, uc_xy, uc_cols, grid_codes, street_codes)
    return out


def _grids(rng, admin: layout.Admin, fp, atoms, anchors, atom_of, n_grids: int):
    """Grids per street in proportion to floor area and land area; Voronoi cells snapped to roads."""
    atom_street = layout.locate(admin.streets, anchors)
    b_street = atom_street[atom_of]
    capacity = fp.area() * fp.floors
    cap = np.bincount(b_street, weights=capacity, minlength=len(STREETS))
    land = np.array([s.area for s in admin.streets])
    weight = 0.65 * cap / max(cap.sum(), 1) + 0.35 * land / land.sum()
    extra = max(n_grids - len(STREETS), 0) * weight
    count = 1 + np.floor(extra).astype(int)
    short = n_grids - count.sum()
    if short > 0:
        count[np.argsort(-(extra - np.floor(extra)), kind="stable")[:short]] += 1
    atom_capacity = np.bincount(atom_of, weights=capacity, minlength=len(atoms))
    polys, street_of = [], []
    for s, street in enumerate(admin.streets):
        mine = np.flatnonzero(atom_street == s)
        for _ in range(8):  # rarely a small cell lies wholly on blocks anchored in its neighbours: draw again
            cells = _street_grids(rng, street, int(count[s]), atoms[mine], anchors[mine], atom_capacity[mine])
            if not any(cell.is_empty for cell in cells):
                break
        for cell in cells:
            if not cell.is_empty:
                polys.append(cell)
                street_of.append(s)
    return polys, np.array(street_of)


def _street_grids(rng, street, k: int, atoms, anchors, capacity) -> list:
    # seeds on the busiest blocks and villages, so dense areas get small grids; the rest anywhere
    k_atoms = min(len(atoms), int(round(0.7 * k)))
    chosen = np.zeros((0, 2))
    if k_atoms:
        w = np.sqrt(capacity) + 1e-9
        chosen = anchors[np.sort(rng.choice(len(atoms), k_atoms, replace=False, p=w / w.sum()))]
        # block centres lie on a lattice, whose cocircular points make a degenerate Voronoi diagram
        chosen = chosen + rng.uniform(-25, 25, chosen.shape)
    free = _random_points(rng, street, k - k_atoms, atoms if len(atoms) else None)
    cells = layout.voronoi_partition(street, np.vstack([chosen, free]))
    return layout.snap_to_atoms(cells, atoms, anchors)[0]


def area_km2(polys) -> list[float]:
    """Areas of metric-frame polygons in km²."""
    return np.round(shapely.area(np.asarray(polys, dtype=object)) / 1e6, 4).tolist()


def _grid_members(rng, n: int) -> list[str]:
    members = names.person_names(rng, names.random_surnames(rng, n), rng.random(n) < 0.45)
    roles = np.array(["专职网格员", "专职网格员", "专职网格员", "兼职网格员", "网格长"])[rng.integers(0, 5, n)]
    return [f"{m}（{r}）" for m, r in zip(members, roles.tolist())]


def _multi(geom) -> shapely.MultiPolygon:
    return geom if isinstance(geom, shapely.MultiPolygon) else shapely.MultiPolygon([geom])


def _random_points(rng, poly, n: int, avoid) -> np.ndarray:
    if n <= 0:
        return np.zeros((0, 2))
    minx, miny, maxx, maxy = poly.bounds
    blocked = shapely.union_all(avoid).buffer(50) if avoid is not None else None
    got = []
    while sum(len(g) for g in got) < n:
        x, y = rng.uniform(minx, maxx, 4 * n + 16), rng.uniform(miny, maxy, 4 * n + 16)
        ok = shapely.contains_xy(poly, x, y)
        if blocked is not None:
            ok &= ~shapely.contains_xy(blocked, x, y)
        got.append(np.stack([x[ok], y[ok]], 1))
    return np.vstack(got)[:n]


def _grid_codes(polys, grid_street) -> list[str]:
    """Street code plus a sequence numbered north to south, west to east within the street."""
    pts = shapely.get_coordinates(shapely.point_on_surface(np.asarray(polys, dtype=object)))
    order = np.lexsort((pts[:, 0], -np.floor(pts[:, 1] / 2000), grid_street))
    codes = [""] * len(polys)
    seq = {}
    for g in order.tolist():
        s = int(grid_street[g])
        seq[s] = seq.get(s, 0) + 1
        codes[g] = f"{STREETS[s][0]}-{seq[s]:03d}"
    return codes


class _Joiner:
    """Which grid (and so street) contains each feature, checked against both polygon sets."""

    def __init__(self, grids_ll, streets_ll, grid_street):
        self.grids = shapely.STRtree(grids_ll)
        self.streets = shapely.STRtree(streets_ll)
        self.grid_street = grid_street
        self.n = len(grids_ll)

    def polygons(self, geoms) -> np.ndarray:
        return self._join(geoms)

    def points(self, xy_ll: np.ndarray) -> np.ndarray:
        return self._join(shapely.points(xy_ll))

    def _join(self, geoms) -> np.ndarray:
        found = np.full(len(geoms), -1)
        inp, idx = self.grids.query(geoms, predicate="within")
        found[inp[::-1]] = idx[::-1]
        # a feature in two grids (only possible on a shared edge) would be ambiguous: drop it
        found[np.bincount(inp, minlength=len(geoms)) != 1] = -1
        inside_street = np.zeros(len(geoms), dtype=bool)
        inp, idx = self.streets.query(geoms, predicate="within")
        inside_street[inp[(found[inp] >= 0) & (self.grid_street[found[inp]] == idx)]] = True
        found[~inside_street] = -1
        return found


def _metric(lonlat: np.ndarray) -> np.ndarray:
    return np.stack([(lonlat[:, 0] - layout.LON0) * layout.M_PER_DEG_LON,
                     (lonlat[:, 1] - layout.LAT0) * layout.M_PER_DEG_LAT], 1) if len(lonlat) else np.zeros((0, 2))


def _points(xy: np.ndarray) -> np.ndarray:
    lon, lat = layout.xy_to_lonlat(xy[:, 0], xy[:, 1])
    return shapely.points(lon, lat)


def _located(joiner: _Joiner, xy, cols, grid_codes, street_codes) -> LayerData:
    geoms = _points(xy)
    grid = joiner.points(shapely.get_coordinates(geoms))
    keep = np.flatnonzero(grid >= 0)
    columns = {k: [v[i] for i in keep.tolist()] if isinstance(v, list) else np.asarray(v)[keep] for k, v in cols.items()}
    columns["grid"] = [grid_codes[g] for g in grid[keep].tolist()]
    columns["street"] = [street_codes[s] for s in joiner.grid_street[grid[keep]].tolist()]
    return LayerData(geoms[keep], columns)


def _buildings(rng, fp, geoms, address, b_grid, b_street, grid_codes, street_codes) -> LayerData:
    n = len(fp)
    per_floor = np.select(
        [fp.use == settlement.U["industrial"],
         np.isin(fp.use, [settlement.U[u] for u in ("commercial", "office", "health")]),
         fp.use == settlement.U["rural_house"]],
        [rng.uniform(5.5, 8.0, n), rng.uniform(3.8, 4.5, n), rng.uniform(3.2, 3.6, n)],
        rng.uniform(2.9, 3.1, n),
    )
    height = np.round(fp.floors * per_floor + rng.uniform(0, 1.5, n), 1)
    year = fp.year.astype(int)
    return LayerData(geoms, {
        "address": address,
        "use_class": [settlement.USE_CLASSES[u] for u in fp.use.astype(int).tolist()],
        "floors": fp.floors.astype(int),
        "height_m": height,
        "floor_area_m2": np.round(fp.area() * fp.floors, 1),
        "year_built": year,
        "year_built_date": names.dates_in_years(rng, year),
        "grid": [grid_codes[g] for g in b_grid.tolist()],
        "street": [street_codes[s] for s in b_street.tolist()],
    })


# -- loading ------------------------------------------------------------------------------------


def build_demo(store: Store, scale: float = 0.05, seed: int = 42, progress: Progress | None = None) -> dict[str, int]:
    """Replace every layer of the store with the demo city; returns the feature count per layer."""
    city = generate(scale, seed)
    store.initialise()
    history = _cases(store, city, scale, seed)
    counts = {}
    for layer in store.catalog:
        data = city.get(layer.id) or _stand_in(layer, city, seed)
        counts[layer.id] = _load(store, layer, data, _rng(seed, "other"), progress)
    if history is not None:
        case_demo.write_history(store, history)
    return counts


def _cases(store: Store, city: dict[str, LayerData], scale: float, seed: int) -> list[dict] | None:
    """The case loop's recent history (gis.cases.demo), at the city's components, if the catalog has it."""
    workflow = Workflow.for_catalog(store.settings.server.layers_dir, store.catalog)
    if workflow is None:
        return None
    src = city["urban_components"]
    columns, geoms, history = case_demo.generate(
        workflow, src.geoms, src.columns["grid"], src.columns["street"], scale, seed
    )
    city[workflow.layer] = LayerData(np.asarray(geoms, dtype=object), columns)
    return history


def _load(store: Store, layer: Layer, data: LayerData, rng, progress: Progress | None) -> int:
    n = len(data.geoms)
    columns = _complete(layer, data.columns, n, rng)
    if layer.geometry is GeometryType.MultiPolygon:
        single = shapely.get_type_id(data.geoms) == 3
        data.geoms[single] = [shapely.MultiPolygon([g]) for g in data.geoms[single]]
    with store.replacing(layer.id) as loader:
        if store.postgis:
            # index and generated-column builds at scale 1 outlast the interactive statement timeout
            loader.conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
        for start in range(0, n, BATCH_ROWS):
            stop = min(start + BATCH_ROWS, n)
            batch = {k: v[start:stop] for k, v in columns.items()}
            loader.append(Batch(np.arange(start + 1, stop + 1), data.geoms[start:stop], batch))
            if progress:
                progress(layer.id, stop, n)
        if progress and n == 0:
            progress(layer.id, 0, 0)
    store.backend.settle(store.engine, store.tables[layer.id])
    return n


def _complete(layer: Layer, columns: dict, n: int, rng) -> dict:
    """The layer's attributes exactly: ours where we have them, plausible fill for any new ones."""
    out = {}
    for attr in layer.attributes:
        if attr.name in columns:
            out[attr.name] = columns[attr.name]
        else:
            out[attr.name] = _filler(attr, n, rng)
    return out


def _filler(attr, n: int, rng) -> list:
    if attr.enum:
        return [attr.enum[k] for k in rng.integers(0, len(attr.enum), n).tolist()]
    if attr.type is AttrType.integer:
        return rng.integers(0, 100, n).tolist()
    if attr.type is AttrType.number:
        return np.round(rng.uniform(0, 100, n), 2).tolist()
    if attr.type is AttrType.boolean:
        return (rng.random(n) < 0.5).tolist()
    if attr.type is AttrType.date:
        return names.dates_in_years(rng, rng.integers(2000, 2025, n))
    if attr.type is AttrType.datetime:
        return names.utc_datetimes(rng, n, dt.datetime(2020, 1, 1, tzinfo=dt.UTC), dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    return [f"{attr.name}-{k + 1}" for k in range(n)]


def _stand_in(layer: Layer, city: dict[str, LayerData], seed: int) -> LayerData:
    """A layer this module does not know yet: its geometry type, placed within the city's grids."""
    if layer.geometry is GeometryType.Point:
        src = city["urban_components"]
        k = max(1, len(src.geoms) // 10)
        return LayerData(src.geoms[:k].copy(), {c: src.columns[c][:k] for c in ("grid", "street")})
    if layer.geometry is GeometryType.LineString:
        grids = city["grids"].geoms
        return LayerData(shapely.get_exterior_ring(grids), {})
    return LayerData(city["grids"].geoms.copy(), {})
