"""The storage-to-WebMercator transform the tile renderers use (gis.crs.web_mercator) gives what
pyproj's own choice for EPSG:4490 -> EPSG:3857 gives, to the bit, in every thread that uses it."""

from __future__ import annotations

import threading

import numpy as np
import pyproj

from gis.crs import web_mercator


def _city_and_beyond(n: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    lon = np.concatenate([rng.uniform(119.5, 121.0, n), rng.uniform(-180, 180, n)])
    lat = np.concatenate([rng.uniform(29.5, 31.0, n), rng.uniform(-85.05, 85.05, n)])
    return lon, lat


def test_the_same_coordinates_as_pyprojs_own_choice():
    lon, lat = _city_and_beyond()
    expected = pyproj.Transformer.from_crs(4490, 3857, always_xy=True).transform(lon, lat)
    got = web_mercator().transform(lon, lat)
    assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])


def test_the_same_coordinates_from_a_new_thread():
    lon, lat = _city_and_beyond(2_000)
    expected = web_mercator().transform(lon, lat)
    seen = []
    thread = threading.Thread(target=lambda: seen.append(web_mercator().transform(lon, lat)))
    thread.start()
    thread.join()
    assert np.array_equal(seen[0][0], expected[0]) and np.array_equal(seen[0][1], expected[1])
