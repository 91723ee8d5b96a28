"""The transforms OneMap reprojects with (gis.crs) give what pyproj's own choice of operation gives,
to the bit, for every supported CRS to and from storage, and in every thread that uses them (they are
built from the chosen PROJ pipeline, which a new thread sets up in ~0.5 ms instead of ~0.2 s)."""

from __future__ import annotations

import threading

import numpy as np
import pyproj
import pytest

from gis import crs


def _city_and_beyond(n: int = 5_000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    lon = np.concatenate([rng.uniform(119.5, 121.0, n), rng.uniform(-180, 180, n)])
    lat = np.concatenate([rng.uniform(29.5, 31.0, n), rng.uniform(-85.05, 85.05, n)])
    return lon, lat


def _pyprojs_own(source: str, target: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(crs.crs_for(source), crs.crs_for(target), always_xy=True)


PAIRS = [(crs.STORAGE_CRS_URI, other) for other in crs.SUPPORTED_CRS if other != crs.STORAGE_CRS_URI]
PAIRS += [(target, source) for source, target in PAIRS]


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{s.rsplit('/', 1)[1]}->{t.rsplit('/', 1)[1]}" for s, t in PAIRS])
def test_the_same_coordinates_as_pyprojs_own_choice(source, target):
    lon, lat = _city_and_beyond()
    x, y = _pyprojs_own(crs.STORAGE_CRS_URI, source).transform(lon, lat) if source != crs.STORAGE_CRS_URI else (lon, lat)
    expected = _pyprojs_own(source, target).transform(x, y)
    got = crs._transformer(source, target).transform(x, y)
    assert np.array_equal(got[0], expected[0], equal_nan=True) and np.array_equal(got[1], expected[1], equal_nan=True)


def test_web_mercator_is_storage_to_epsg_3857_from_a_new_thread_too():
    lon, lat = _city_and_beyond(2_000)
    expected = pyproj.Transformer.from_crs(4490, 3857, always_xy=True).transform(lon, lat)
    seen = []
    thread = threading.Thread(target=lambda: seen.append(crs.web_mercator().transform(lon, lat)))
    thread.start()
    thread.join()
    assert np.array_equal(seen[0][0], expected[0]) and np.array_equal(seen[0][1], expected[1])


def test_threads_asking_at_once_share_one_build(monkeypatch):
    # a tile worker's render threads reach their first hexagon tiles together: one proj.db search
    # (~0.2 s of CPU) for them all, the others waiting for it, not one search each
    searches = []
    own = pyproj.Transformer.from_crs
    monkeypatch.setattr(pyproj.Transformer, "from_crs", lambda *a, **k: searches.append(a) or own(*a, **k))
    monkeypatch.setattr(crs, "_TRANSFORMERS", {})
    start = threading.Barrier(8)
    got = []

    def first_use():
        start.wait()
        got.append(crs.web_mercator())

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(searches) == 1 and len(got) == 8 and all(t is got[0] for t in got)
