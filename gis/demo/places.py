"""Point layers along the roads and at the buildings: key places, cameras, urban components.

Each function returns candidate locations in the metric frame with their attributes; the city
module keeps those that land inside a grid and adds the grid and street codes.
"""

from __future__ import annotations

import datetime as dt
import re

import numpy as np

from gis.demo import names
from gis.demo.settlement import SEAT, TOWN, U, VILLAGE, VILLAGE_CELL, Blocks, Footprints, Villages, _place

KEY_CATEGORIES = {  # share, preferred building uses, share placed in villages
    "school": (0.11, ["education"], 0.3),
    "kindergarten": (0.15, ["education", "residential"], 0.4),
    "hospital": (0.02, ["health"], 0.0),
    "clinic": (0.24, ["health", "commercial", "mixed"], 0.7),
    "gas_station": (0.08, [], 0.0),
    "hazardous_chemicals": (0.04, ["industrial"], 0.0),
    "market": (0.08, ["commercial", "mixed"], 0.3),
    "shopping_mall": (0.02, ["commercial"], 0.0),
    "nursing_home": (0.04, ["public", "residential"], 0.3),
    "government": (0.18, ["public", "office"], 0.8),
    "transport_hub": (0.02, ["public", "commercial"], 0.0),
    "stadium": (0.02, ["public", "education"], 0.0),
}
CAPACITY = {
    "school": (600, 3000), "kindergarten": (90, 360), "hospital": (100, 1200), "clinic": (2, 30),
    "market": (300, 5000), "shopping_mall": (2000, 20000), "nursing_home": (50, 400),
    "transport_hub": (2000, 20000), "stadium": (3000, 30000),
}
COMPONENT_TYPES = {  # code: (name after GB/T 30428.2, department, share)
    "0101": ("上水井盖", "平度市自来水公司", 0.10),
    "0103": ("雨水井盖", "平度市住房和城乡建设局", 0.12),
    "0105": ("电力井盖", "国网平度市供电公司", 0.06),
    "0111": ("燃气井盖", "平度市燃气公司", 0.05),
    "0115": ("消火栓", "平度市消防救援大队", 0.04),
    "0125": ("路灯", "平度市城市管理局", 0.22),
    "0201": ("公交站亭", "平度市公共交通有限公司", 0.02),
    "0301": ("公共厕所", "平度市环境卫生管理处", 0.01),
    "0307": ("垃圾箱", "平度市环境卫生管理处", 0.12),
    "0405": ("行道树", "平度市园林绿化服务中心", 0.26),
}
SEAT_NS_ROADS = names.SEAT_ROADS[::-1]
HOSPITALS = ["人民医院", "中医医院", "妇幼保健院", "第二人民医院", "第三人民医院", "精神卫生中心", "口腔医院", "骨科医院"]
UTC = dt.UTC
INSTALLED_UNTIL = dt.datetime(2025, 7, 1, tzinfo=UTC)
INSPECTED_UNTIL = dt.datetime(2025, 11, 1, tzinfo=UTC)


def _road(addr: str) -> str:
    match = re.match(r"\D+", addr)
    return match.group(0) if match else addr


def road_points(rng, blocks: Blocks, which: np.ndarray):
    """Points on the pavement beside block `which`, 8-13 m from the road centreline."""
    n = len(which)
    side = rng.integers(0, 4, n)
    t = rng.uniform(-0.5, 0.5, n)
    inset = rng.uniform(8, 13, n)
    hx, hy = blocks.sx[which] / 2, blocks.sy[which] / 2
    lx = np.select([side == 0, side == 1, side == 2], [t * 2 * hx, hx - inset, t * 2 * hx], -hx + inset)
    ly = np.select([side == 0, side == 1, side == 2], [-hy + inset, t * 2 * hy, hy - inset], t * 2 * hy)
    xy = _place(np.stack([lx, ly], axis=1)[:, None, :], blocks.x[which], blocks.y[which], blocks.ang[which])
    return xy[:, 0, :], side


def lane_points(rng, villages: Villages, which: np.ndarray) -> np.ndarray:
    """Points in the lanes between a village's rows of houses."""
    cw, ch = VILLAGE_CELL
    m = villages.m[which]
    row = np.floor(rng.random(len(which)) * np.maximum(m - 1, 1)).astype(int)
    ly = (row + 0.5 - (m - 1) / 2) * ch + rng.uniform(-1.5, 1.5, len(which))
    lx = rng.uniform(-1, 1, len(which)) * (villages.half[which, 0] - 8)
    xy = _place(np.stack([lx, ly], axis=1)[:, None, :], villages.x[which], villages.y[which], villages.ang[which])
    return xy[:, 0, :]


def key_places(rng, n: int, blocks: Blocks, fp: Footprints, bstreet: np.ndarray, street_names: list[str]):
    """Key places at suitable buildings (a village house for village clinics and committees)."""
    cats = list(KEY_CATEGORIES)
    share = np.array([KEY_CATEGORIES[c][0] for c in cats])
    counts = rng.multinomial(n, share / share.sum())
    rural = np.flatnonzero(fp.use == U["rural_house"])
    urban = np.flatnonzero(fp.use != U["rural_house"])
    xs, ys, out_cat, out_name, out_cap = [], [], [], [], []
    seen: dict[str, int] = {}
    for cat, k in zip(cats, counts.tolist()):
        if k == 0:
            continue
        _, uses, village_share = KEY_CATEGORIES[cat]
        if not uses:  # gas stations: on the roads at the edge of the town and the seats
            dist = np.hypot(blocks.x, blocks.y)
            town_edge = (blocks.kind == TOWN) & (dist >= np.median(dist[blocks.kind == TOWN]))
            outer = np.flatnonzero(town_edge | (blocks.kind == SEAT))
            which = outer[rng.integers(0, len(outer), k)]
            xy, _ = road_points(rng, blocks, which)
            xs.append(xy[:, 0]), ys.append(xy[:, 1])
            for b in which.tolist():
                if blocks.kind[b] == SEAT:
                    place = street_names[blocks.place[b]]
                else:
                    place = names.road_name(names.EW_ROADS, int(blocks.j[b]))
                out_name.append(_unique(seen, f"{rng.choice(['中国石化', '中国石油', '中化石油'])}{place.removesuffix('镇')}加油站"))
            out_cat += [cat] * k
            out_cap += [None] * k
            continue
        in_village = rng.random(k) < village_share if len(rural) else np.zeros(k, bool)
        pool = np.flatnonzero(np.isin(fp.use, [U[u] for u in uses]))
        pool = pool if len(pool) else urban if len(urban) else rural
        picks = np.where(in_village, rural[rng.integers(0, max(len(rural), 1), k)] if len(rural) else 0,
                         pool[rng.integers(0, len(pool), k)])
        xy = fp.inner_points(picks, rng.uniform(-1, 1, k), rng.uniform(-1, 1, k))
        xs.append(xy[:, 0]), ys.append(xy[:, 1])
        for b in picks.tolist():
            out_name.append(_unique(seen, _place_name(cat, fp, b, street_names[bstreet[b]], seen)))
        lo_hi = CAPACITY.get(cat)
        out_cap += [int(v) for v in rng.integers(*lo_hi, k)] if lo_hi else [None] * k
        out_cat += [cat] * k
    contact = names.landlines(rng, len(out_cat))
    contact = [c if r > 0.1 else None for c, r in zip(contact, rng.random(len(out_cat)).tolist())]
    xy = np.stack([np.concatenate(xs), np.concatenate(ys)], axis=1) if xs else np.zeros((0, 2))
    return xy, {"category": out_cat, "name": out_name, "capacity": out_cap, "contact": contact}


KINDS = ("实验学校", "中心小学", "小学", "中学", "幼儿园", "卫生室", "社区卫生服务站", "加油站", "农贸市场", "集市", "敬老院", "幸福院", "卫生院",
         "液化气储配站", "化工有限公司", "危险化学品仓库", "精细化工厂", "医院", "汽车站", "体育中心")


def _unique(seen: dict[str, int], name: str) -> str:
    """The name, or for the second and later of that name 平度市上海路第二小学 and the like."""
    seen[name] = seen.get(name, 0) + 1
    k = seen[name]
    if k == 1:
        return name
    ordinal = f"第{names.chinese_number(k)}" if k <= 99 else f"第{k}"
    for kind in KINDS:
        if name.endswith(kind):
            return f"{name.removesuffix(kind)}{ordinal}{kind}"
    return f"{name}（{ordinal}分部）"


def _place_name(cat: str, fp: Footprints, b: int, street: str, seen: dict[str, int]) -> str:
    short = street.removesuffix("街道").removesuffix("镇")
    local = _road(fp.addr[b])
    village = fp.kind[b] == VILLAGE
    if cat == "school":
        if village:
            return f"{local}小学"
        if fp.floors[b] > 4:  # the big campuses: the seat's middle school, the town's 实验学校
            return f"平度市{short}{'中学' if fp.kind[b] == SEAT else '实验学校'}"
        return f"平度市{local}小学"
    if cat == "kindergarten":
        return f"{local}幼儿园" if village else f"平度市{local}幼儿园"
    if cat == "hospital":
        if fp.kind[b] == SEAT:
            return f"平度市{short}卫生院"
        k = seen["#hospital"] = seen.get("#hospital", -1) + 1
        return f"平度市{HOSPITALS[k]}" if k < len(HOSPITALS) else f"平度市{short}医院"
    if cat == "clinic":
        return f"{local}卫生室" if village else f"{short}{local}社区卫生服务站"
    if cat == "hazardous_chemicals":
        return f"平度市{short}{['化工有限公司', '危险化学品仓库', '精细化工厂', '液化气储配站'][b % 4]}"
    if cat == "market":
        return f"{local}集市" if village else f"{short}{local}农贸市场"
    if cat == "shopping_mall":
        return f"{['利群', '佳乐家', '维客', '国货'][b % 4]}{short}{local}店"
    if cat == "nursing_home":
        return f"{local}幸福院" if village else f"平度市{short}敬老院"
    if cat == "government":
        if village:
            return f"{local}村民委员会"
        return f"平度市{street}{'办事处' if street.endswith('街道') else '人民政府'}"
    if cat == "transport_hub":
        return f"平度{short}汽车站"
    if cat == "stadium":
        return f"平度市{short}体育中心"
    raise AssertionError(cat)


def cameras(rng, n: int, blocks: Blocks, villages: Villages, places_xy: np.ndarray, places: dict, street_names):
    shares = np.array([0.5, 0.12, 0.23, 0.15])
    town = np.flatnonzero(blocks.kind == TOWN)
    seat = np.flatnonzero(blocks.kind == SEAT)
    k_town, k_seat, k_vil, k_key = rng.multinomial(n, shares / shares.sum()).tolist()
    if not len(villages.x):
        k_town, k_vil = k_town + k_vil, 0
    if not len(places_xy):
        k_town, k_key = k_town + k_key, 0
    xy, loc, heading, dept = [], [], [], []
    for pool, k, kind in ((town, k_town, TOWN), (seat, k_seat, SEAT)):
        if not k or not len(pool):
            continue
        which = pool[rng.integers(0, len(pool), k)]
        ex, ey = rng.integers(0, 2, k), rng.integers(0, 2, k)
        a, b = rng.uniform(9, 13, k), rng.uniform(9, 13, k)
        hx, hy = blocks.sx[which] / 2, blocks.sy[which] / 2
        local = np.stack([np.where(ex, hx - a, -hx + a), np.where(ey, hy - b, -hy + b)], axis=1)[:, None, :]
        xy.append(_place(local, blocks.x[which], blocks.y[which], blocks.ang[which])[:, 0, :])
        for w, e, f in zip(which.tolist(), ex.tolist(), ey.tolist()):
            i, j = int(blocks.i[w]) + e, int(blocks.j[w]) + f
            if kind == TOWN:
                loc.append(f"{names.road_name(names.NS_ROADS, i)}与{names.road_name(names.EW_ROADS, j)}路口")
            else:
                town_name = street_names[blocks.place[w]].removesuffix("镇")
                ns, ew = SEAT_NS_ROADS[i % len(SEAT_NS_ROADS)], names.SEAT_ROADS[j % len(names.SEAT_ROADS)]
                loc.append(f"{town_name}{ns}与{ew}路口")
        heading.append(np.degrees(blocks.ang[which]) + rng.integers(0, 4, k) * 90 + rng.normal(0, 8, k))
        dept.append(rng.choice(["public_security", "transport", "urban_management"], k, p=[0.7, 0.2, 0.1]))
    if k_vil:
        which = rng.integers(0, len(villages.x), k_vil)
        side = rng.choice([-1.0, 1.0], k_vil)
        along = rng.uniform(-0.3, 0.3, k_vil) * villages.half[which, 1]
        local = np.stack([side * (villages.half[which, 0] + 4), along], axis=1)
        xy.append(_place(local[:, None, :], villages.x[which], villages.y[which], villages.ang[which])[:, 0, :])
        loc += [f"{villages.name[v]}{'东' if s > 0 else '西'}村口" for v, s in zip(which.tolist(), side.tolist())]
        heading.append(np.degrees(villages.ang[which]) + np.where(side > 0, 0, 180) + rng.normal(0, 15, k_vil))
        dept.append(rng.choice(["public_security", "community"], k_vil, p=[0.55, 0.45]))
    if k_key:
        which = rng.integers(0, len(places_xy), k_key)
        r, a = rng.uniform(12, 30, k_key), rng.uniform(0, 2 * np.pi, k_key)
        xy.append(places_xy[which] + np.stack([r * np.cos(a), r * np.sin(a)], axis=1))
        loc += [f"{places['name'][p]}门口" for p in which.tolist()]
        heading.append(np.degrees(a) + 180 + rng.normal(0, 10, k_key))  # looking back at the entrance
        cat = np.array(places["category"], dtype=object)[which]
        edu = np.isin(cat, ["school", "kindergarten"])
        dept.append(np.where(edu, "education", rng.choice(["public_security", "community"], k_key, p=[0.6, 0.4])))
    xy = np.concatenate(xy) if xy else np.zeros((0, 2))
    total = len(xy)
    math_deg = np.concatenate(heading) if heading else np.zeros(0)
    dome = rng.random(total) < 0.35
    number = rng.integers(1, 13, total)
    cols = {
        "name": [f"{place}{'球机' if d else '枪机'}{k:02d}" for place, d, k in zip(loc, dome.tolist(), number.tolist())],
        "direction_deg": np.round((90 - math_deg) % 360, 1) % 360,  # 359.97 rounds to 360.0
        "fov_deg": np.round(np.where(dome, rng.uniform(55, 95, total), rng.uniform(35, 80, total)), 1),
        "owner_dept": np.concatenate(dept).tolist() if dept else [],
        "status": np.where(rng.random(total) < 0.93, "online", "offline").tolist(),
        "installed_at": names.utc_datetimes(rng, total, dt.datetime(2014, 1, 1, tzinfo=UTC), INSTALLED_UNTIL),
    }
    return xy, cols


def stream_urls(ids: np.ndarray) -> list[str]:
    return [f"rtsp://10.{20 + (i >> 16) % 200}.{(i >> 8) % 256}.{i % 256}:554/Streaming/Channels/101" for i in ids.tolist()]


def components(rng, n: int, blocks: Blocks, villages: Villages):
    shares = np.array([0.62, 0.13, 0.25])
    town = np.flatnonzero(blocks.kind == TOWN)
    seat = np.flatnonzero(blocks.kind == SEAT)
    k_town, k_seat, k_vil = rng.multinomial(n, shares).tolist()
    if not len(villages.x):
        k_town, k_vil = k_town + k_vil, 0
    parts = []
    for pool, k in ((town, k_town), (seat, k_seat)):
        if k and len(pool):
            parts.append(road_points(rng, blocks, pool[rng.integers(0, len(pool), k)])[0])
    if k_vil:
        parts.append(lane_points(rng, villages, rng.integers(0, len(villages.x), k_vil)))
    xy = np.concatenate(parts) if parts else np.zeros((0, 2))
    total = len(xy)
    codes = list(COMPONENT_TYPES)
    p = np.array([COMPONENT_TYPES[c][2] for c in codes])
    pick = rng.choice(len(codes), total, p=p / p.sum())
    cols = {
        "type_code": [codes[k] for k in pick.tolist()],
        "type_name": [COMPONENT_TYPES[codes[k]][0] for k in pick.tolist()],
        "owner_dept": [COMPONENT_TYPES[codes[k]][1] for k in pick.tolist()],
        "status": np.array(["normal", "damaged", "missing", "under_repair"])[
            rng.choice(4, total, p=[0.9, 0.05, 0.01, 0.04])
        ].tolist(),
        "updated_at": names.utc_datetimes(rng, total, dt.datetime(2022, 1, 1, tzinfo=UTC), INSPECTED_UNTIL),
    }
    return xy, cols

