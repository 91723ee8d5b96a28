"""Where the buildings stand: the town centre, the town seats and the villages.

Town and seats are lattices of road blocks aligned to their main roads; each block is filled
from a template (tower compound, mid-rise slabs, shops, sheds, a campus) whose slots are disjoint
cells, so footprints never overlap. Villages are rows of courtyard houses on their own small
lattice. All in the metric frame of `layout`; one row per building, column-wise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import shapely

from gis.demo import names
from gis.demo.layout import STREETS, TOWN_STREETS

USE_CLASSES = ["residential", "commercial", "office", "industrial", "public", "education", "health", "mixed", "rural_house"]
U = {name: i for i, name in enumerate(USE_CLASSES)}

TOWN, SEAT, VILLAGE = 0, 1, 2
TOWN_BLOCKS = 1_000  # at scale 1: about 48 km² of town
SEAT_BLOCKS = 30  # per town seat, at scale 1
VILLAGES = 1_750  # at scale 1 (Pingdu has about 1,790 villages)

# name: (cols, rows, width range, depth range, floor choices, {use: p}, share of L-shapes, years)
TEMPLATES = {
    "core": (2, 2, (36, 60), (24, 40), (18, 22, 26, 30, 33, 40), {"commercial": 0.45, "office": 0.35, "mixed": 0.2},
             0.35, (2003, 2024)),
    "towers": (3, 2, (28, 42), (15, 20), (11, 18, 18, 24, 26, 33), {"residential": 0.92, "mixed": 0.08}, 0.0, (2006, 2024)),
    "midrise": (2, 5, (50, 80), (11, 14), (5, 6, 6, 7), {"residential": 0.95, "mixed": 0.05}, 0.0, (1985, 2012)),
    "lowrise": (4, 3, (18, 34), (12, 22), (2, 3, 4, 5), {"commercial": 0.5, "mixed": 0.3, "residential": 0.2},
                0.15, (1980, 2016)),
    "industrial": (2, 2, (50, 90), (35, 60), (1, 1, 2, 3), {"industrial": 1.0}, 0.2, (1995, 2023)),
    "campus": (2, 2, (40, 80), (25, 55), (3, 4, 5, 6), {}, 0.5, (1970, 2021)),
}
TEMPLATE_NAMES = list(TEMPLATES)
CAMPUS_USES = (["education", "health", "public"], [0.5, 0.25, 0.25])
# block mix by distance from the town centre (fraction of the town radius), and for seats
TOWN_MIX = [
    (0.3, {"core": 0.4, "towers": 0.35, "campus": 0.12, "lowrise": 0.13}),
    (0.7, {"towers": 0.55, "midrise": 0.22, "campus": 0.1, "lowrise": 0.13}),
    (9.9, {"midrise": 0.3, "industrial": 0.32, "lowrise": 0.2, "towers": 0.12, "campus": 0.06}),
]
SEAT_MIX = {"midrise": 0.2, "lowrise": 0.45, "industrial": 0.2, "campus": 0.15}


@dataclass
class Blocks:
    x: np.ndarray
    y: np.ndarray
    ang: np.ndarray
    sx: np.ndarray
    sy: np.ndarray
    road: np.ndarray
    kind: np.ndarray  # TOWN or SEAT
    place: np.ndarray  # street index of the seat, -1 in the town
    i: np.ndarray
    j: np.ndarray
    template: np.ndarray
    cells: np.ndarray  # block plus half its roads: the atom the partition keeps whole


@dataclass
class Villages:
    x: np.ndarray
    y: np.ndarray
    ang: np.ndarray
    half: np.ndarray  # (n, 2) half extent of the house lattice in the village frame
    m: np.ndarray  # rows (and columns) of the village's house lattice
    name: list[str]
    boxes: np.ndarray


@dataclass
class Footprints:
    cx: list = field(default_factory=list)
    cy: list = field(default_factory=list)
    ang: list = field(default_factory=list)
    w: list = field(default_factory=list)
    d: list = field(default_factory=list)
    t: list = field(default_factory=list)  # L-shape arm thickness, 0 for a rectangle
    use: list = field(default_factory=list)
    floors: list = field(default_factory=list)
    year: list = field(default_factory=list)
    kind: list = field(default_factory=list)
    place: list = field(default_factory=list)  # block index, or village index
    addr: list = field(default_factory=list)  # local part: road and number, or village and number

    def add(self, **cols) -> None:
        for key, value in cols.items():
            getattr(self, key).append(value)

    def finish(self) -> "Footprints":
        for key in ("cx", "cy", "ang", "w", "d", "t", "use", "floors", "year", "kind", "place"):
            parts = getattr(self, key)
            setattr(self, key, np.concatenate(parts) if parts else np.zeros(0))
        self.addr = [a for part in self.addr for a in part]
        return self

    def take(self, keep: np.ndarray) -> "Footprints":
        out = Footprints()
        for key in ("cx", "cy", "ang", "w", "d", "t", "use", "floors", "year", "kind", "place"):
            setattr(out, key, getattr(self, key)[keep])
        out.addr = [self.addr[k] for k in np.flatnonzero(keep)] if keep.dtype == bool else [self.addr[k] for k in keep]
        return out

    def __len__(self) -> int:
        return len(self.cx)

    def area(self) -> np.ndarray:
        return np.where(self.t > 0, self.w * self.t + (self.d - self.t) * self.t, self.w * self.d)

    def polygons(self) -> np.ndarray:
        hw, hd, t = self.w / 2, self.d / 2, self.t
        rect = np.array([[-hw, -hd], [hw, -hd], [hw, hd], [-hw, hd], [-hw, -hd]]).transpose(2, 0, 1)
        ell = np.array(
            [[-hw, -hd], [hw, -hd], [hw, -hd + t], [-hw + t, -hd + t], [-hw + t, hd], [-hw, hd], [-hw, -hd]]
        ).transpose(2, 0, 1)
        out = np.empty(len(self), dtype=object)
        is_l = self.t > 0
        for mask, local in ((~is_l, rect), (is_l, ell)):
            if mask.any():
                out[mask] = shapely.polygons(_place(local[mask], self.cx[mask], self.cy[mask], self.ang[mask]))
        return out

    def inner_points(self, which: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Points inside buildings `which`, at (u, v) in [-1, 1]² of the main wing's inner 80%."""
        w, d, t = self.w[which], self.d[which], self.t[which]
        depth = np.where(t > 0, t, d)
        oy = np.where(t > 0, -d / 2 + t / 2, 0.0)
        local = np.stack([u * 0.4 * w, oy + v * 0.4 * depth], axis=1)[:, None, :]
        return _place(local, self.cx[which], self.cy[which], self.ang[which])[:, 0, :]


def _place(local: np.ndarray, x: np.ndarray, y: np.ndarray, ang: np.ndarray) -> np.ndarray:
    """Rotate (n, k, 2) local coordinates by ang and move them to (x, y)."""
    c, s = np.cos(ang)[:, None], np.sin(ang)[:, None]
    lx, ly = local[..., 0], local[..., 1]
    return np.stack([x[:, None] + c * lx - s * ly, y[:, None] + s * lx + c * ly], axis=-1)


def _lattice(rng, centre, ang, sx, sy, n, boundary):
    """The n blocks of a road lattice nearest its centre, with a lobed, ragged edge."""
    k = int(math.ceil(math.sqrt(n))) + 4
    ii, jj = np.meshgrid(np.arange(-k, k + 1), np.arange(-k, k + 1), indexing="ij")
    ii, jj = ii.ravel(), jj.ravel()
    lx, ly = ii * sx, jj * sy
    phi = np.arctan2(ly, lx)
    p = rng.uniform(0, 2 * np.pi, 2)
    lobes = 1 + 0.22 * np.sin(3 * phi + p[0]) + 0.1 * np.sin(5 * phi + p[1])
    score = np.hypot(lx, ly) / lobes + rng.normal(0, 0.4 * sx, len(ii))
    order = np.argsort(score, kind="stable")
    ii, jj = ii[order], jj[order]
    xy = _place(np.stack([ii * sx, jj * sy], axis=1)[:, None, :].astype(float), np.full(len(ii), centre[0]),
                np.full(len(ii), centre[1]), np.full(len(ii), ang))[:, 0, :]
    inside = shapely.contains_xy(boundary.buffer(-2 * max(sx, sy)), xy[:, 0], xy[:, 1])
    keep = np.flatnonzero(inside)[:n]
    return ii[keep], jj[keep], xy[keep]


def make_blocks(rng, boundary, scale: float) -> Blocks:
    rows = []
    town_ang = math.radians(rng.uniform(2, 6))
    n_town = max(4, round(TOWN_BLOCKS * scale))
    rows.append((TOWN, -1, town_ang, 240.0, 200.0, 30.0, _lattice(rng, (0.0, 0.0), town_ang, 240, 200, n_town, boundary)))
    n_seat = max(1, round(SEAT_BLOCKS * scale))
    for s in range(TOWN_STREETS, len(STREETS)):
        ang = town_ang + math.radians(rng.uniform(-20, 20))
        seat = (STREETS[s][3] * 1000, STREETS[s][4] * 1000)
        rows.append((SEAT, s, ang, 200.0, 160.0, 24.0, _lattice(rng, seat, ang, 200, 160, n_seat, boundary)))
    cols = {k: [] for k in ("x", "y", "ang", "sx", "sy", "road", "kind", "place", "i", "j", "template")}
    for kind, place, ang, sx, sy, road, (ii, jj, xy) in rows:
        n = len(ii)
        if kind == TOWN:
            rho = np.hypot(xy[:, 0], xy[:, 1]) / max(np.hypot(xy[:, 0], xy[:, 1]).max(), 1.0)
            template = np.empty(n, dtype=int)
            lower = 0.0
            for upper, mix in TOWN_MIX:
                band = (rho >= lower) & (rho < upper)
                template[band] = _pick(rng, mix, band.sum())
                lower = upper
            template[0] = TEMPLATE_NAMES.index("core")  # the very centre is always downtown
        else:
            template = _pick(rng, SEAT_MIX, n)
        for key, value in (("x", xy[:, 0]), ("y", xy[:, 1]), ("i", ii), ("j", jj), ("template", template)):
            cols[key].append(value)
        for key, value in (("ang", ang), ("sx", sx), ("sy", sy), ("road", road), ("kind", kind), ("place", place)):
            cols[key].append(np.full(n, value))
    arrays = {k: np.concatenate(v) for k, v in cols.items()}
    hx, hy = arrays["sx"] / 2, arrays["sy"] / 2
    local = np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy], [-hx, -hy]]).transpose(2, 0, 1)
    cells = shapely.polygons(_place(local, arrays["x"], arrays["y"], arrays["ang"]))
    return Blocks(**arrays, cells=cells)


def _pick(rng, mix: dict, n: int) -> np.ndarray:
    names_, p = list(mix), np.array(list(mix.values()))
    return np.array([TEMPLATE_NAMES.index(t) for t in names_])[rng.choice(len(names_), n, p=p / p.sum())]


def block_buildings(rng, blocks: Blocks, fp: Footprints) -> None:
    for t, name in enumerate(TEMPLATE_NAMES):
        cols, rows, wr, dr, floor_choices, uses, l_share, years = TEMPLATES[name]
        which = np.flatnonzero(blocks.template == t)
        if not len(which):
            continue
        slots = cols * rows
        b = np.repeat(which, slots)
        slot = np.tile(np.arange(slots), len(which))
        keep = rng.random(len(b)) > 0.08  # some slots stay green space or parking
        keep[slot == 0] = True
        b, slot = b[keep], slot[keep]
        n = len(b)
        iw, ih = blocks.sx[b] - blocks.road[b], blocks.sy[b] - blocks.road[b]
        cw, ch = iw / cols, ih / rows
        w = np.minimum(rng.uniform(*wr, n), cw - 6)
        d = np.minimum(rng.uniform(*dr, n), ch - 6)
        u = -iw / 2 + (slot % cols + 0.5) * cw + rng.uniform(-1, 1, n) * np.maximum(cw - w - 4, 0) / 2
        v = -ih / 2 + (slot // cols + 0.5) * ch + rng.uniform(-1, 1, n) * np.maximum(ch - d - 4, 0) / 2
        xy = _place(np.stack([u, v], axis=1)[:, None, :], blocks.x[b], blocks.y[b], blocks.ang[b])[:, 0, :]
        is_l = rng.random(n) < l_share
        if name == "campus":
            block_use = rng.choice(len(CAMPUS_USES[0]), len(blocks.x), p=CAMPUS_USES[1])
            use = np.array([U[c] for c in CAMPUS_USES[0]])[block_use[b]]
        else:
            use = np.array([U[c] for c in uses])[rng.choice(len(uses), n, p=list(uses.values()))]
        floors = np.array(floor_choices)[rng.integers(0, len(floor_choices), n)]
        floors = np.where(use == U["health"], floors + rng.integers(0, 8, n), floors)
        floors = np.where(blocks.kind[b] == SEAT, np.minimum(floors, 18), floors)
        fp.add(
            cx=xy[:, 0], cy=xy[:, 1], ang=blocks.ang[b], w=w, d=d, t=np.where(is_l, np.minimum(w, d) * 0.4, 0.0),
            use=use, floors=floors, year=rng.integers(years[0], years[1] + 1, n), kind=blocks.kind[b], place=b,
            addr=[_block_address(blocks, bi, si) for bi, si in zip(b.tolist(), slot.tolist())],
        )


def _block_address(blocks: Blocks, b: int, slot: int) -> str:
    i, j = int(blocks.i[b]), int(blocks.j[b])
    if blocks.kind[b] == TOWN:
        road = names.road_name(names.EW_ROADS, j)
        return f"{road}{2 * (i + 40) + 1}号{slot + 1}号楼"
    road = names.SEAT_ROADS[j % len(names.SEAT_ROADS)]
    return f"{road}{2 * (i + 20) + 1}号{slot + 1}号楼"


def make_villages(rng, boundary, blocks: Blocks, scale: float) -> tuple[Villages, np.ndarray]:
    """Village sites about 1.3 km apart, clear of the town and seats, never touching; house counts."""
    spacing, jitter, clearance = 1_300.0, 420.0, 650.0  # clearance: twice a 300-house village's half-diagonal
    minx, miny, maxx, maxy = boundary.bounds
    rows = np.arange(miny, maxy, spacing * math.sqrt(3) / 2)
    cols = np.arange(minx, maxx + spacing, spacing)
    gx, gy = np.meshgrid(cols, rows, indexing="xy")
    gx = gx + (np.arange(len(rows)) % 2)[:, None] * spacing / 2  # a hexagonal lattice reads less like a grid
    x = gx.ravel() + rng.uniform(-jitter, jitter, gx.size)
    y = gy.ravel() + rng.uniform(-jitter, jitter, gx.size)
    ok = shapely.contains_xy(boundary.buffer(-700), x, y)
    built = shapely.union_all(blocks.cells).buffer(900)
    ok &= ~shapely.contains_xy(built, x, y)
    x, y = x[ok], y[ok]
    pts = shapely.points(x, y)
    near_a, near_b = shapely.STRtree(pts).query(pts, predicate="dwithin", distance=clearance)
    dropped = np.zeros(len(x), dtype=bool)
    for a, b in zip(near_a.tolist(), near_b.tolist()):
        if a < b and not dropped[a]:
            dropped[b] = True
    x, y = x[~dropped], y[~dropped]
    n = min(len(x), max(1, round(VILLAGES * scale)))
    pick = np.sort(rng.choice(len(x), n, replace=False))
    x, y = x[pick], y[pick]
    houses = np.clip(np.round(rng.lognormal(math.log(95), 0.45, n)), 25, 300).astype(int)
    ang = math.radians(4) + np.radians(rng.normal(0, 8, n))
    village_names = names.village_names(rng, n)
    return Villages(x, y, ang, np.zeros((n, 2)), np.zeros(n, dtype=int), village_names, np.empty(n, dtype=object)), houses


VILLAGE_CELL = (16.0, 20.0)


def village_buildings(rng, villages: Villages, houses: np.ndarray, fp: Footprints) -> None:
    cw, ch = VILLAGE_CELL
    for v in range(len(villages.x)):
        n = int(houses[v])
        m = int(math.ceil(math.sqrt(n * 1.45)))
        c, r = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
        lx = (c.ravel() - (m - 1) / 2) * cw
        ly = (r.ravel() - (m - 1) / 2) * ch
        stretch = rng.uniform(0.7, 1.4)
        score = np.hypot(lx / stretch, ly * stretch) + rng.normal(0, 12, m * m)
        cells = np.sort(np.argsort(score, kind="stable")[:n])
        lx, ly = lx[cells], ly[cells]
        w, d = rng.uniform(10, 13, n), rng.uniform(9, 12, n)
        lx = lx + rng.uniform(-1, 1, n) * (cw - w - 2) / 2
        ly = ly + rng.uniform(-1, 1, n) * (ch - d - 4) / 2
        xy = _place(np.stack([lx, ly], axis=1)[:, None, :], np.full(n, villages.x[v]), np.full(n, villages.y[v]),
                    np.full(n, villages.ang[v]))[:, 0, :]
        two = rng.random(n) < 0.18
        is_l = rng.random(n) < 0.2
        villages.m[v] = m
        villages.half[v] = (np.abs(lx).max() + cw / 2 + 6, np.abs(ly).max() + ch / 2 + 6)
        fp.add(
            cx=xy[:, 0], cy=xy[:, 1], ang=np.full(n, villages.ang[v]), w=w, d=d, t=np.where(is_l, 4.5, 0.0),
            use=np.full(n, U["rural_house"]), floors=np.where(two, 2, 1), year=rng.integers(1965, 2024, n),
            kind=np.full(n, VILLAGE), place=np.full(n, v), addr=[f"{villages.name[v]}{k + 1}号" for k in range(n)],
        )
    hx, hy = villages.half[:, 0], villages.half[:, 1]
    local = np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy], [-hx, -hy]]).transpose(2, 0, 1)
    if len(villages.x):
        villages.boxes = shapely.polygons(_place(local, villages.x, villages.y, villages.ang))
