"""Residents: households in the residential buildings, with names, ID cards and phones.

A rural house holds its family (sometimes two, sometimes none); the town's flats take the other
households in proportion to their floor area. Ages, birth dates and ID numbers agree with each
other as of `REFERENCE_DATE`, a fixed day so that a build does not depend on when it ran.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from gis.demo import names
from gis.demo.settlement import U, Footprints

REFERENCE_DATE = dt.date(2026, 1, 1)
AGE_BANDS = [("0-14", 0, 14), ("15-24", 15, 24), ("25-44", 25, 44), ("45-59", 45, 59), ("60-79", 60, 79), ("80+", 80, 99)]
HOUSEHOLD_SIZES = np.array([0.17, 0.30, 0.24, 0.16, 0.09, 0.04])  # 1..6 people
HEAD_BANDS = np.array([0.0, 0.03, 0.38, 0.32, 0.23, 0.04])
OTHER_BANDS = np.array([0.45, 0.22, 0.08, 0.05, 0.15, 0.05])
KEY_CATEGORIES = ["disabled", "mental_health", "community_correction", "drug_rehab", "petitioner"]
KEY_P = np.array([0.012, 0.003, 0.001, 0.0005, 0.001])


def households(rng, n_people: int, fp: Footprints):
    """Sizes and buildings of the households, sorted by building; and each one's rank in it."""
    draw = rng.choice(6, n_people // 2 + 16, p=HOUSEHOLD_SIZES) + 1
    total = np.cumsum(draw)
    h = int(np.searchsorted(total, n_people)) + 1
    sizes = draw[:h].copy()
    sizes[-1] -= total[h - 1] - n_people
    rural = np.flatnonzero(fp.use == U["rural_house"])
    per_house = rng.choice(3, len(rural), p=[0.12, 0.75, 0.13])  # empty houses: families gone to the city
    rural_hh = np.repeat(rural, per_house)
    if len(rural_hh) > 0.6 * h:  # a village-only city at tiny scales: keep room for the town
        rural_hh = np.sort(rng.choice(rural_hh, int(0.6 * h), replace=False))
    flats = np.flatnonzero(np.isin(fp.use, [U["residential"], U["mixed"]]))
    if not len(flats):
        flats = rural if len(rural) else np.arange(len(fp))
    weight = fp.area()[flats] * fp.floors[flats] * np.where(fp.use[flats] == U["mixed"], 0.5, 1.0)
    urban_hh = rng.choice(flats, h - len(rural_hh), p=weight / weight.sum())
    building = np.concatenate([rural_hh, urban_hh])
    order = np.argsort(building, kind="stable")
    building = building[order]
    rank = np.arange(h) - np.searchsorted(building, building, side="left")
    return sizes, building, rank


def residents(rng, n_people: int, fp: Footprints, building_address: list[str]):
    """Metric points and attribute columns of the residents, and each one's building index."""
    sizes, hb, rank = households(rng, n_people, fp)
    h = len(sizes)
    floors = fp.floors[hb]
    per_unit = floors * 2
    unit, rem = rank // per_unit + 1, rank % per_unit
    flat = (fp.use[hb] != U["rural_house"]) & (floors > 1)
    hh_address = [
        f"{building_address[b]}{u}单元{r // 2 + 1}{r % 2 + 1:02d}室" if f else building_address[b]
        for b, u, r, f in zip(hb.tolist(), unit.tolist(), rem.tolist(), flat.tolist())
    ]

    hh = np.repeat(np.arange(h), sizes)
    start = np.cumsum(sizes) - sizes
    member = np.arange(n_people) - start[hh]
    head_band = rng.choice(6, h, p=HEAD_BANDS)
    band = rng.choice(6, n_people, p=OTHER_BANDS)
    band[member == 0] = head_band
    spouse = member == 1
    band[spouse] = np.where(rng.random(spouse.sum()) < 0.8, head_band[hh[spouse]], rng.choice(6, spouse.sum(), p=HEAD_BANDS))
    lo = np.array([b[1] for b in AGE_BANDS])[band]
    hi = np.array([b[2] for b in AGE_BANDS])[band]
    age = lo + (rng.random(n_people) * (hi - lo + 1)).astype(int)

    head_male = rng.random(h) < 0.7
    male = rng.random(n_people) < 0.51
    male[member == 0] = head_male
    male[spouse] = ~head_male[hh[spouse]]
    family = names.random_surnames(rng, h)
    surname = family[hh]
    own = (spouse | (rng.random(n_people) < 0.15)) & (member > 0)
    surname[own] = names.random_surnames(rng, own.sum())

    year = REFERENCE_DATE.year - age
    hi_day = (year - 1970).astype("datetime64[Y]").astype("datetime64[D]")
    lo_day = (year - 1 - 1970).astype("datetime64[Y]").astype("datetime64[D]") + np.timedelta64(1, "D")
    birth = lo_day + (rng.random(n_people) * ((hi_day - lo_day).astype(int) + 1)).astype(int)
    seq = _unique_sequences(rng, birth, male)

    phone = names.phones(rng, n_people)
    no_phone = np.where(age < 15, rng.random(n_people) < 0.95, rng.random(n_people) < 0.04)
    key = np.full(n_people, None, dtype=object)
    adult = age >= 15
    draw = rng.random(n_people)
    edges = np.cumsum(KEY_P)
    for k, name in enumerate(KEY_CATEGORIES):
        key[adult & (draw >= (edges[k - 1] if k else 0)) & (draw < edges[k])] = name
    alone = (sizes[hh] == 1) & (age >= 60) & (rng.random(n_people) < 0.7)
    key[alone] = "elderly_living_alone"

    u, v = rng.uniform(-1, 1, n_people), rng.uniform(-1, 1, n_people)
    xy = fp.inner_points(hb[hh], u, v)
    cols = {
        "person_id": [f"RK370283{i + 1:08d}" for i in range(n_people)],
        "name": names.person_names(rng, surname, male),
        "national_id": names.national_ids(birth, seq),
        "phone": [None if x else p for p, x in zip(phone, no_phone.tolist())],
        "age_band": np.array([b[0] for b in AGE_BANDS], dtype=object)[band].tolist(),
        "household": [f"HH370283{k + 1:07d}" for k in hh.tolist()],
        "address": [hh_address[k] for k in hh.tolist()],
        "key_category": key.tolist(),
    }
    return xy, cols, hb[hh]


def _unique_sequences(rng, birth: np.ndarray, male: np.ndarray) -> np.ndarray:
    """ID sequence numbers, odd for men, so that no two residents share an ID number."""
    seq = rng.integers(0, 500, len(birth)) * 2 + male.astype(int)
    days = birth.astype(np.int64)
    for _ in range(50):
        key = days * 1000 + seq
        order = np.argsort(key, kind="stable")
        dup = order[1:][key[order][1:] == key[order][:-1]]
        if not len(dup):
            break
        seq[dup] = rng.integers(0, 500, len(dup)) * 2 + male[dup].astype(int)
    return seq
