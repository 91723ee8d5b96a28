"""`onemap qgis-project`: the planners' QGIS project, opened by headless QGIS as a planner would.

Every layer is valid, each OGC API - Features layer counts what the server's numberMatched says,
the groups hold what the role may see (read from the roles file here, not through OneMap's code),
and a rendering of the whole project is not blank. Runs on both backends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
import yaml

from tests.security_support import security_server

HERE = Path(__file__).resolve().parent
SYSTEM_PYTHON = "/usr/bin/python3"
SHIPPED_ROLES = HERE.parent / "layers" / "roles" / "roles.yml"
# the roles file the test servers and the CLI subprocesses run under (tests/conftest.py sets it)
ROLES = Path(os.environ.get("ONEMAP_ROLES_FILE", SHIPPED_ROLES))

pytestmark = [
    pytest.mark.clients,
    pytest.mark.skipif(not Path(SYSTEM_PYTHON).exists(), reason="Debian's python3 with python3-qgis is missing"),
]


def number_matched(base: str, collection: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = httpx.get(f"{base}/collections/{collection}/items", params={"limit": 1, "f": "json"}, headers=headers, timeout=60)
    return answer.json()["numberMatched"]


def right(role: str, layer: str, roles: Path = ROLES) -> str:
    body = yaml.safe_load(roles.read_text(encoding="utf-8"))["roles"][role]
    rule = (body.get("layers") or {}).get(layer, body.get("default", "none"))
    return rule["right"] if isinstance(rule, dict) else rule


def write_project(base: str, out: Path, role: str, roles: Path = ROLES, token: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "ONEMAP_ROLES_FILE": str(roles)}
    if token:
        env["ONEMAP_TOKEN"] = token  # as a planner would: not on the command line, where ps shows it
    return subprocess.run(
        [sys.executable, "-m", "gis.cli", "qgis-project", str(out), "--role", role, "--url", base],
        capture_output=True, text=True, timeout=600, cwd=HERE.parent, env=env,
    )


def layer_ids() -> list[str]:
    """The published layers, read from the layer files themselves."""
    ids = []
    for path in sorted((HERE.parent / "layers").glob("*.yml")):
        body = yaml.safe_load(path.read_text(encoding="utf-8"))
        if body.get("published", True):
            ids.append(body["id"])
    return ids


def open_project(path: Path, png: Path, auth: Path | None = None) -> dict:
    done = subprocess.run(
        [SYSTEM_PYTHON, str(HERE / "clients" / "qgis_project.py"), str(path), str(png), *([str(auth)] if auth else [])],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def public_project(live_server, tmp_path_factory, backend):
    out = tmp_path_factory.mktemp(f"qgis-{backend}") / "onemap.qgz"
    done = write_project(live_server, out, "public")
    assert done.returncode == 0, done.stdout + done.stderr
    return out, open_project(out, out.with_suffix(".png"))


def test_every_layer_is_valid_and_grouped(public_project, live_server):
    path, report = public_project
    assert report["read"] and path.stat().st_size > 0
    assert report["layers"] and all(entry["valid"] for entry in report["layers"]), report["layers"]
    groups = {entry["group"] for entry in report["layers"]}
    assert "分析 Analysis (OGC API - Features)" in groups and "显示 Display (vector tiles)" in groups
    tiles = [e for e in report["layers"] if e["group"].startswith("显示")]
    assert [e["provider"] for e in tiles] == ["vectortile"]


def test_analysis_layers_are_what_the_role_may_read_with_the_servers_counts(public_project, live_server):
    _, report = public_project
    published = [c["id"] for c in httpx.get(f"{live_server}/collections", params={"f": "json"}, timeout=60).json()["collections"]]
    expected = sorted(c for c in layer_ids() if c in published and right("public", c) in ("masked", "full"))
    oapif = [e for e in report["layers"] if e["provider"] == "OAPIF"]
    assert sorted(e["typename"] for e in oapif) == expected
    for entry in oapif:
        assert entry["feature_count"] == number_matched(live_server, entry["typename"]), entry


def test_heatmaps_are_there_for_the_indicators_the_role_may_see(public_project, live_server):
    _, report = public_project
    body = yaml.safe_load(ROLES.read_text(encoding="utf-8"))["roles"]["public"]
    withheld = {i for i, r in (body.get("indicators") or {}).items() if r == "none"}
    heat = [e for e in report["layers"] if e["group"].startswith("热力图")]
    offered = [
        i for i in httpx.get(f"{live_server}/stats/indicators", timeout=60).json()["indicators"]
        if httpx.get(f"{live_server}/collections/h3_{i['id']}/tiles/WebMercatorQuad/tilejson.json", timeout=60).status_code == 200
    ]
    expected = {i["name"] for i in offered if i["id"] not in withheld and right("public", i["layer"]) != "none"}
    assert {e["name"].split(" ", 1)[1] for e in heat} == expected
    assert all(e["provider"] == "vectortile" for e in heat)


def test_styled_and_rendered_not_blank(public_project):
    _, report = public_project
    renderers = {e["typename"]: e["renderer"] for e in report["layers"] if e["provider"] == "OAPIF"}
    assert renderers["key_places"] == "categorizedSymbol"  # colours by category, as on the wall
    assert not report["render"]["errors"], report["render"]
    assert report["render"]["differing"] > 0.3, report["render"]
    assert report["crs"] == "EPSG:3857"


def test_layers_a_role_reads_only_with_its_token_are_named_not_dropped_silently(store, tmp_path, backend):
    # the shipped roles: the public does not see cameras, the wall does
    assert right("wall", "cameras", SHIPPED_ROLES) == "masked" and right("public", "cameras", SHIPPED_ROLES) == "none"
    with security_server(store) as base:
        done = write_project(base, tmp_path / "wall.qgz", "wall", SHIPPED_ROLES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "left out cameras" in done.stderr and "--token" in done.stderr


@pytest.mark.parametrize("role", ["staff", "admin"])
def test_with_a_token_every_layer_the_role_may_see_is_there_and_counts_match(store, tmp_path, backend, role):
    """The role's key travels in a QGIS authentication configuration (Basic, the key as password):
    layers served only with it are valid, and each OAPIF layer pages to the role's numberMatched."""
    from gis.security import keys

    token, record = keys.create(store, f"planner-{role}", role)
    try:
        with security_server(store) as base:
            out = tmp_path / f"{role}.qgz"
            done = write_project(base, out, role, SHIPPED_ROLES, token=token)
            assert done.returncode == 0, done.stdout + done.stderr
            assert "left out" not in done.stderr and token not in done.stdout + done.stderr
            auth = out.with_suffix(".auth.xml")
            assert oct(auth.stat().st_mode & 0o777) == "0o600"
            with zipfile.ZipFile(out) as qgz:  # the project holds only the configuration's id
                qgs = next(qgz.read(n) for n in qgz.namelist() if n.endswith(".qgs")).decode("utf-8")
            assert token not in qgs and qgs.count("authcfg") >= len(layer_ids()) - 1
            report = open_project(out, out.with_suffix(".png"), auth)
            assert report["layers"] and all(e["valid"] for e in report["layers"]), report["layers"]
            served = {c["id"] for c in httpx.get(f"{base}/collections", headers={"Authorization": f"Bearer {token}"}, timeout=60).json()["collections"]}
            expected = sorted(c for c in layer_ids() if c in served and right(role, c, SHIPPED_ROLES) in ("masked", "full"))
            oapif = [e for e in report["layers"] if e["provider"] == "OAPIF"]
            assert "cameras" in expected and sorted(e["typename"] for e in oapif) == expected
            for entry in oapif:
                assert entry["feature_count"] == number_matched(base, entry["typename"], token), entry
            assert not report["render"]["errors"] and report["render"]["differing"] > 0.3, report["render"]
            # without the configuration QGIS reaches the server as nobody: the token-only layers fail
            bare = open_project(out, out.with_suffix(".bare.png"))
            cameras = next(e for e in bare["layers"] if e["name"].startswith("视频监控"))  # title_zh of layers/cameras.yml
            assert not cameras["valid"], cameras
    finally:
        keys.revoke(store, record.key_id)


def test_bad_arguments_say_what_to_do(live_server, tmp_path):
    done = write_project(live_server, tmp_path / "x.qgz", "nosuchrole")
    assert done.returncode != 0 and "no role 'nosuchrole'" in done.stderr and "Traceback" not in done.stderr
    done = write_project("http://127.0.0.1:9", tmp_path / "x.qgz", "public")
    assert done.returncode != 0 and "is OneMap serving there" in done.stderr and "Traceback" not in done.stderr
    done = write_project(live_server, tmp_path / "x.txt", "public")
    assert done.returncode != 0 and ".qgz" in done.stderr
