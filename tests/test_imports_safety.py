"""Imports never half-write: one bad row changes nothing, re-runs change nothing, a killed
import leaves nothing behind.

"Nothing changed" is checked as a digest of every table of the store (all rows, all columns,
including `onemap_layers` with its data versions), taken before and after.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess

import pytest

from tests.imports_support import (
    ONEMAP, REPO, checksums, cli_env, close_store, onemap_load, open_store, rows,
)

COMPONENTS = [
    # source id, type code, status, lon, lat
    (f"UC-{i:04d}", ["0125", "0115", "0307"][i % 3], ["normal", "damaged"][i % 2], 120.10 + i * 1e-4, 30.20 + i * 1e-4)
    for i in range(40)
]
BASE = "attributes:\n  type_name: \"'lamp'\"\n  owner_dept: \"'urban_management'\"\nsource_id: SID\n"


def geojson(path, records, overrides=None):
    overrides = overrides or {}
    features = []
    for n, (sid, code, status, x, y) in enumerate(records, start=1):
        props = {"SID": sid, "type_code": code, "status": status}
        geometry = {"type": "Point", "coordinates": [x, y]}
        if n in overrides:
            kind, value = overrides[n]
            if kind == "geometry":
                geometry = value
            else:
                props[kind] = value
        features.append({"type": "Feature", "properties": props, "geometry": geometry})
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    return path


@pytest.fixture()
def store(backend, tmp_path):
    store = open_store(backend, tmp_path, "safety")
    (tmp_path / "map.yml").write_text(BASE, encoding="utf-8")
    base = onemap_load(store, geojson(tmp_path / "base.geojson", COMPONENTS[:20]), "--layer", "urban_components",
                       "--mapping", tmp_path / "map.yml")
    assert base.returncode == 0, base.stderr
    yield store
    close_store(store)


BAD = {
    # row: (what, value) — each makes exactly that row invalid, for the reason named in REASONS
    3: ("status", "on fire"),
    7: ("type_code", None),
    11: ("geometry", {"type": "LineString", "coordinates": [[120.1, 30.2], [120.2, 30.3]]}),
    15: ("geometry", {"type": "Point", "coordinates": [220.0, 30.2]}),
    19: ("SID", "UC-0001"),
}
REASONS = {
    3: "status: 'on fire' is not one of normal, damaged, missing, under_repair",
    7: "type_code is required and is empty",
    11: "geometry is a LineString; layer urban_components holds Points",
    15: "outside the city's extent",
    19: "source id 'UC-0001' repeats row 2",
}


def test_one_bad_row_and_the_store_is_as_it_was(store, tmp_path):
    before = checksums(store)
    bad = geojson(tmp_path / "bad.geojson", COMPONENTS[:20] + COMPONENTS[20:], {22: BAD[3]})
    result = onemap_load(store, bad, "--layer", "urban_components", "--mapping", tmp_path / "map.yml")
    assert result.returncode == 1
    assert "1 of 40 rows of bad.geojson are invalid; nothing was written" in result.stderr
    assert "row 22 (UC-0021): status: 'on fire'" in result.stderr
    assert "--skip-invalid" in result.stderr  # what to do next
    assert checksums(store) == before


def test_every_bad_row_is_named_with_its_reason(store, tmp_path):
    before = checksums(store)
    bad = geojson(tmp_path / "bad.geojson", COMPONENTS[:20], BAD)
    result = onemap_load(store, bad, "--layer", "urban_components", "--mapping", tmp_path / "map.yml")
    assert result.returncode == 1
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith("row ")]
    assert len(lines) == len(BAD)
    for line, (row, reason) in zip(lines, sorted(REASONS.items())):
        assert line.startswith(f"row {row} ") and reason in line, line
    assert checksums(store) == before


def test_skip_invalid_loads_the_good_rows_and_lists_the_rest(store, tmp_path):
    records = COMPONENTS[20:40]
    wrong = {row: what for row, what in BAD.items() if row != 19}  # UC-0001 here would update the stored one
    bad = geojson(tmp_path / "more.geojson", records, wrong)
    rejects = tmp_path / "rejects.csv"
    result = onemap_load(store, bad, "--layer", "urban_components", "--mapping", tmp_path / "map.yml",
                         "--skip-invalid", rejects)
    assert result.returncode == 0, result.stderr
    with rejects.open(encoding="utf-8") as f:
        listed = list(csv.DictReader(f))
    assert [int(r["row"]) for r in listed] == sorted(wrong)
    for r in listed:
        assert REASONS[int(r["row"])] in r["reasons"]
        assert r["source_id"] == records[int(r["row"]) - 1][0]
    good = [r for n, r in enumerate(records, start=1) if n not in wrong]
    stored = {sid: (code, status) for sid, code, status in rows(store, "urban_components", "source_id, type_code, status")}
    assert len(stored) == 20 + len(good)
    for sid, code, status, _, _ in good:
        assert stored[sid] == (code, status)


def test_rerunning_an_import_changes_nothing_and_a_change_updates_in_place(store, tmp_path):
    again = geojson(tmp_path / "base.geojson", COMPONENTS[:20])
    before = checksums(store)
    ids_before = rows(store, "urban_components", "id, source_id")
    result = onemap_load(store, again, "--layer", "urban_components", "--mapping", tmp_path / "map.yml")
    assert result.returncode == 0 and "0 inserted, 0 updated, 20 unchanged" in result.stdout
    assert checksums(store) == before

    changed = list(COMPONENTS[:20])
    changed[4] = (changed[4][0], changed[4][1], "missing", changed[4][3], changed[4][4])
    result = onemap_load(store, geojson(tmp_path / "base.geojson", changed + COMPONENTS[20:22]),
                         "--layer", "urban_components", "--mapping", tmp_path / "map.yml")
    assert result.returncode == 0 and "2 inserted, 1 updated, 19 unchanged" in result.stdout
    after = rows(store, "urban_components", "id, source_id, status")
    assert [(i, s) for i, s, _ in after[:20]] == ids_before  # features keep their ids
    assert after[4][2] == "missing"
    assert [s for _, s, _ in after[20:]] == ["UC-0020", "UC-0021"]


def test_a_killed_import_leaves_nothing_half_written(store, tmp_path):
    # big enough that the import is still writing when it is killed
    n = 60_000
    path = tmp_path / "many.csv"
    with path.open("w", encoding="utf-8") as f:
        f.write("SID,type_code,status,lon,lat\n")
        for i in range(n):
            f.write(f"K{i},0125,normal,{120 + (i % 1000) * 1e-4:.6f},{30 + (i // 1000) * 1e-4:.6f}\n")
    before = checksums(store)
    process = subprocess.Popen(
        [*ONEMAP, "load", str(path), "--layer", "urban_components", "--mapping", str(tmp_path / "map.yml"),
         "--crs", "EPSG:4490"],
        env=cli_env(store), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    seen = []
    for line in process.stderr:
        seen.append(line)
        done = line.split()[-2].split("/")[0] if line.startswith("onemap load: writing") else "0"
        if 0 < int(done) < n:
            os.kill(process.pid, signal.SIGKILL)  # mid-way through the write
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "".join(seen)
    assert checksums(store) == before
    # and the store still takes the next import
    result = onemap_load(store, geojson(tmp_path / "after.geojson", COMPONENTS[20:22]), "--layer",
                         "urban_components", "--mapping", tmp_path / "map.yml")
    assert result.returncode == 0 and "2 inserted" in result.stdout, result.stderr
