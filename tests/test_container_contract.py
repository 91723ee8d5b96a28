"""The container contract: what Dockerfile and compose.yml promise, checked without a Docker engine.

The static half reads Dockerfile, compose.yml and the lock files and checks that they agree with
each other and with the code (base image, user, health check, start command, ports, pins). The
live half runs the image's CMD exactly as written, with the test venv's bin/ standing in for the
image's PATH, against a demo city in a temporary GeoPackage, waits for /healthz and /readyz, and
then runs the HEALTHCHECK command itself against it. Where this machine allows it (root and
`unshare`), the server gets a private network namespace, so port 5000 is used as written whatever
else listens on 5000 here; elsewhere the port is swapped for a free one.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yml"
LOCK = ROOT / "requirements.lock"
TEST_LOCK = ROOT / "requirements-test.lock"
FORBIDDEN_PINS = re.compile(r"^(torch|torchvision|torchaudio|triton|nvidia-.*|cuda.*|onemap)$")


# -- reading the files ---------------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """Dockerfile instructions as (KEYWORD, arguments), continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comments inside a continued instruction are ignored by Docker too
        if stripped.endswith("\\"):
            pending += stripped[:-1].strip() + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        if full:
            keyword, _, args = full.partition(" ")
            result.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return result


def exec_form(args: str, what: str) -> list[str]:
    try:
        argv = json.loads(args)
    except json.JSONDecodeError:
        pytest.fail(f"{what} must use the exec (JSON array) form so signals reach the server: {args}")
    assert isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv), args
    return argv


def option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    result = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and version and ";" not in line and " " not in line, f"{path.name}: not an exact pin: {line}"
        result[canonical(name)] = version
    return result


@pytest.fixture(scope="module")
def docker() -> dict:
    steps = instructions(DOCKERFILE.read_text())
    by_kind: dict[str, list[str]] = {}
    for keyword, args in steps:
        by_kind.setdefault(keyword, []).append(args)
    env = {}
    for args in by_kind.get("ENV", []):
        for token in shlex.split(args):
            assert "=" in token, f"ENV must use KEY=value: {args}"
            key, value = token.split("=", 1)
            env[key] = value
    health = by_kind["HEALTHCHECK"][-1] if "HEALTHCHECK" in by_kind else None
    return {"steps": steps, "by_kind": by_kind, "env": env, "health": health}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def cmd_of(docker) -> list[str]:
    assert "CMD" in docker["by_kind"], "Dockerfile has no CMD"
    return exec_form(docker["by_kind"]["CMD"][-1], "CMD")


def healthcheck_argv(docker) -> list[str]:
    health = docker["health"]
    assert health, "Dockerfile has no HEALTHCHECK"
    options, sep, command = health.partition("CMD ")
    assert sep, f"HEALTHCHECK has no CMD: {health}"
    assert all(o.startswith("--") for o in options.split()), f"unexpected HEALTHCHECK options: {options}"
    return exec_form(command, "HEALTHCHECK CMD")


def healthcheck_url(argv: list[str]) -> str:
    urls = re.findall(r"https?://[^\s'\"]+", " ".join(argv))
    assert len(urls) == 1, f"HEALTHCHECK should probe exactly one URL: {argv}"
    return urls[0]


# -- the Dockerfile ------------------------------------------------------------------------------


def test_base_image_is_python_312_slim(docker):
    keyword, _ = docker["steps"][0]
    assert keyword == "FROM", "the first instruction must be FROM"
    stages = docker["by_kind"]["FROM"]
    image = stages[-1].split()[0]  # the service stage is the last one
    assert image == "python:3.12-slim" or image.startswith("python:3.12-slim@"), image
    # any earlier stage only builds assets (MapLibre from the npm registry), never the service
    assert all(stage.split()[0].startswith("node:") for stage in stages[:-1]), stages


def test_the_wall_gets_maplibre_from_npm_and_a_cjk_font(docker):
    runs = " ".join(docker["by_kind"]["RUN"])
    assert "npm ci" in runs and "fonts-wqy-microhei" in runs
    copies = docker["by_kind"]["COPY"]
    assert any("--from=" in c and "node_modules" in c for c in copies), copies


def test_runs_as_a_non_root_user(docker):
    users = docker["by_kind"].get("USER", [])
    assert users, "no USER: the server would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0", ""), user
    assert any("useradd" in run and user in run for run in docker["by_kind"]["RUN"]), f"{user} is never created"
    # the user must be able to write the store volume and the tile cache
    assert any("chown" in run and "/data" in run and user in run for run in docker["by_kind"]["RUN"])


def test_spatialite_is_installed_for_the_embedded_store(docker):
    runs = " ".join(docker["by_kind"]["RUN"])
    assert "apt-get install" in runs and "libsqlite3-mod-spatialite" in runs


def test_healthcheck_probes_healthz_with_python(docker):
    argv = healthcheck_argv(docker)
    assert Path(argv[0]).name.startswith("python"), f"slim images have no curl/wget: {argv[0]}"
    url = urlparse(healthcheck_url(argv))
    assert url.path == "/healthz"
    assert url.hostname in ("127.0.0.1", "localhost")
    assert url.port == int(option(cmd_of(docker), "--port")), "HEALTHCHECK probes another port than CMD serves"


def test_cmd_serves_on_all_interfaces_port_5000(docker):
    argv = cmd_of(docker)
    assert argv[:2] == ["onemap", "serve"], argv
    assert option(argv, "--host") == "0.0.0.0"
    assert option(argv, "--port") == "5000"
    exposed = {p.split("/")[0] for args in docker["by_kind"].get("EXPOSE", []) for p in args.split()}
    assert exposed == {"5000"}, exposed


def test_cmd_options_are_ones_the_cli_accepts(docker):
    from gis.cli import main

    serve = main.commands["serve"]
    known = {opt for param in serve.params for opt in param.opts}
    given = [arg.split("=")[0] for arg in cmd_of(docker)[2:] if arg.startswith("--")]
    assert set(given) <= known, f"unknown serve options: {set(given) - known}"


def test_default_store_is_a_geopackage_on_the_data_volume(docker):
    from gis.storage.engine import gpkg_path

    url = docker["env"].get("ONEMAP_DATABASE_URL")
    assert url and url.startswith("gpkg:"), url
    assert gpkg_path(url).parent == Path("/data")
    assert any("/data" in args for args in docker["by_kind"].get("VOLUME", []))


def test_image_installs_every_pin_then_the_project_without_deps(docker):
    steps = docker["steps"]
    copies = [i for i, (k, a) in enumerate(steps) if k == "COPY" and "requirements.lock" in a.split()]
    installs = [i for i, (k, a) in enumerate(steps) if k == "RUN" and re.search(r"pip install .*-r requirements\.lock", a)]
    project = [i for i, (k, a) in enumerate(steps) if k == "RUN" and re.search(r"pip install .*--no-deps .*(-e )?\.(\s|$)", a)]
    assert copies and installs and project, "the image must pip install -r requirements.lock, then the project --no-deps"
    assert copies[0] < installs[0] < project[0]
    # and every file the project needs at run time is copied in (layers/ and the pygeoapi config
    # are found beside gis/, so the project is installed in place)
    copied = " ".join(a for k, a in steps if k == "COPY")
    for needed in ("pyproject.toml", "README.md", "pygeoapi-config.yml", "layers", "gis", "tiles"):
        assert re.search(rf"(^|\s){re.escape(needed)}(\s|$)", copied), f"{needed} is not copied into the image"
    ignored = (ROOT / ".dockerignore").read_text().split()
    for needed in ("requirements.lock", "pyproject.toml", "README.md", "pygeoapi-config.yml", "layers", "gis", "tiles"):
        assert needed not in ignored, f".dockerignore drops {needed}"


# -- the locks -----------------------------------------------------------------------------------


def test_lock_pins_every_direct_dependency_and_nothing_forbidden():
    runtime = pins(LOCK)
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in declared:
        name = canonical(re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0])
        assert name in runtime, f"{requirement} (pyproject.toml) is not pinned in requirements.lock"
    for lock in (LOCK, TEST_LOCK):
        bad = [name for name in pins(lock) if FORBIDDEN_PINS.match(name)]
        assert not bad, f"{lock.name} pins {bad}"


def test_test_lock_extends_the_runtime_lock_with_the_same_versions():
    runtime, test = pins(LOCK), pins(TEST_LOCK)
    differing = {n: (v, test.get(n)) for n, v in runtime.items() if test.get(n) != v}
    assert not differing, f"requirements-test.lock disagrees with requirements.lock: {differing}"
    for name in ("pytest", "pytest-timeout", "httpx", "owslib", "playwright"):
        assert name in test, f"{name} missing from requirements-test.lock"


def test_this_venv_has_every_runtime_pin_installed():
    """The live test below stands in for the image, which installs requirements.lock: so must this venv."""
    installed = {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    wrong = {n: (v, installed.get(n)) for n, v in pins(LOCK).items() if installed.get(n) != v}
    assert not wrong, f"venv differs from requirements.lock (run make test to sync): {wrong}"


# -- compose -------------------------------------------------------------------------------------


def test_compose_points_onemap_at_the_postgis_service(compose):
    services = compose["services"]
    assert {"onemap", "postgis", "demo"} <= set(services)
    db = services["postgis"]
    assert db["image"] == "postgis/postgis:15-3.4"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    db_env = env_of(db)
    for name in ("onemap", "demo"):
        service = services[name]
        assert service.get("build") in (".", {"context": "."}), f"{name} must be built from this Dockerfile"
        url = urlparse(env_of(service)["ONEMAP_DATABASE_URL"])
        assert url.scheme.startswith("postgresql")
        assert url.hostname == "postgis" and (url.port or 5432) == 5432
        assert url.username == db_env["POSTGRES_USER"] and url.password == db_env["POSTGRES_PASSWORD"]
        assert url.path.lstrip("/") == db_env["POSTGRES_DB"]
        assert service["depends_on"]["postgis"]["condition"] == "service_healthy"


def test_compose_loads_the_demo_before_serving(compose):
    demo, onemap = compose["services"]["demo"], compose["services"]["onemap"]
    command = demo["command"] if isinstance(demo["command"], list) else shlex.split(demo["command"])
    assert command[:2] == ["onemap", "demo"], command
    assert onemap["depends_on"]["demo"]["condition"] == "service_completed_successfully"
    assert demo.get("restart", "no") == "no", "a one-shot loader must not restart"
    from gis.cli import main

    if "demo" not in main.commands:
        pytest.skip("this checkout has no `onemap demo` command yet (gis/demo/cli.py)")
    known = {opt for param in main.commands["demo"].params for opt in param.opts}
    given = {arg.split("=")[0] for arg in command[2:] if arg.startswith("--")}
    assert given <= known, f"onemap demo does not accept {given - known}"


def test_compose_publishes_the_port_the_image_serves(compose, docker):
    served = int(option(cmd_of(docker), "--port"))
    ports = compose["services"]["onemap"]["ports"]
    targets = set()
    for port in ports:
        if isinstance(port, dict):
            targets.add(int(port["target"]))
        else:
            targets.add(int(str(port).split("/")[0].rsplit(":", 1)[-1]))
    assert targets == {served}, f"compose publishes container ports {targets}, the image serves {served}"


# -- the start command, run as written -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def private_network_available() -> bool:
    if not (shutil.which("unshare") and shutil.which("nsenter") and shutil.which("ip")):
        return False
    probe = subprocess.run(["unshare", "--net", "ip", "link", "set", "lo", "up"], capture_output=True)
    return probe.returncode == 0


PROBE = """
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
        print(r.status, r.read().decode()[:500])
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode()[:500])
except Exception as e:
    print(0, repr(e))
"""


@pytest.fixture(scope="module")
def demo_gpkg(tmp_path_factory) -> str:
    try:
        from gis.demo.city import build_demo
    except ImportError as err:
        pytest.skip(f"gis.demo.city.build_demo is not in this checkout yet ({err}); the live check needs a demo city")
    from gis.settings import DatabaseSettings, Settings
    from gis.storage.store import Store

    path = tmp_path_factory.mktemp("container") / "onemap.gpkg"
    url = f"gpkg:///{path}"
    store = Store.open(Settings(DatabaseSettings(database_url=url)))
    try:
        store.initialise()
        build_demo(store, scale=0.005, seed=1)
        assert store.is_built(), "build_demo left the store unbuilt"
    finally:
        store.close()
    return url


@pytest.mark.timeout(300)
def test_image_start_command_serves_and_passes_its_own_healthcheck(docker, demo_gpkg, tmp_path):
    cmd, check = cmd_of(docker), healthcheck_argv(docker)
    port = int(option(cmd, "--port"))
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, **docker["env"], "ONEMAP_DATABASE_URL": demo_gpkg}
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    for var in ("HOST", "PORT", "ONEMAP_HOST", "ONEMAP_PORT"):
        env.pop(var, None)  # the image sets none of these: CMD alone decides where it listens
    executable = shutil.which(cmd[0], path=env["PATH"])
    assert executable, f"{cmd[0]} is not on the venv's PATH: is the project installed (make test does it)?"

    isolated = private_network_available()
    if isolated:
        # the server in its own network namespace: CMD's port as written, no clash with this host
        server_argv = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *cmd]
    else:
        port = free_port()
        cmd = [*cmd[: cmd.index("--port") + 1], str(port), *cmd[cmd.index("--port") + 2 :]]
        check = [arg.replace(":5000/", f":{port}/") for arg in check]
        server_argv = cmd
    log = (tmp_path / "server.log").open("w+")
    server = subprocess.Popen(server_argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def inside(argv: list[str]) -> subprocess.CompletedProcess:
        prefix = ["nsenter", f"--net=/proc/{server.pid}/ns/net", "--"] if isolated else []
        return subprocess.run(prefix + argv, env=env, capture_output=True, text=True, timeout=30)

    def get(path: str) -> tuple[int, str]:
        done = inside([sys.executable, "-c", PROBE, f"http://127.0.0.1:{port}{path}"])
        status, _, body = done.stdout.strip().partition(" ")
        return int(status or 0), body

    def server_log() -> str:
        log.seek(0)
        return log.read()[-3000:]

    try:
        deadline = time.monotonic() + 120
        status = {"/healthz": 0, "/readyz": 0}
        while time.monotonic() < deadline and set(status.values()) != {200}:
            assert server.poll() is None, f"the start command exited ({server.returncode}):\n{server_log()}"
            for path in status:
                if status[path] != 200:
                    status[path], body = get(path)
            time.sleep(0.5)
        assert status == {"/healthz": 200, "/readyz": 200}, f"not healthy within 120 s: {status}\n{server_log()}"
        ready = json.loads(get("/readyz")[1])
        assert ready["status"] == "ok" and not ready["missing_layers"], ready

        done = inside(check)
        assert done.returncode == 0, f"HEALTHCHECK failed ({done.returncode}): {done.stderr[-2000:]}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    # the server stops cleanly on SIGTERM (what `docker stop` sends), well within Docker's 10 s
    assert server.returncode in (0, -15), f"exit code {server.returncode} on SIGTERM:\n{(tmp_path / 'server.log').read_text()[-2000:]}"
