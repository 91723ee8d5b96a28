"""`onemap qgis-project OUT.qgz`: a QGIS project with every layer a role may see.

The plan (gis.qgis.plan) is made here, in the venv; QGIS itself runs in Debian's python3, where
python3-qgis installs its bindings, through writer.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import click

WRITER = Path(__file__).resolve().parent / "writer.py"
SYSTEM_PYTHON = os.environ.get("ONEMAP_QGIS_PYTHON", "/usr/bin/python3")


@click.command("qgis-project")
@click.argument("out", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@click.option("--role", default="public", show_default=True, help="role whose layers the project holds (the roles file: ONEMAP_ROLES_FILE or layers/roles/roles.yml)")
@click.option("--url", "base", default=None, help="OneMap's base URL the layers point at [default: ONEMAP_BASE_URL or http://HOST:PORT]")
@click.option(
    "--token", envvar="ONEMAP_TOKEN", default=None,
    help="a key of ROLE (or set ONEMAP_TOKEN): the project then holds the layers served only with it, and "
    "OUT's stem + .auth.xml holds the QGIS authentication configuration carrying it (import it once in QGIS: "
    "Settings > Options > Authentication > Utilities > Import)",
)
def qgis_project(out: Path, role: str, base: str | None, token: str | None) -> None:
    """Write OUT.qgz: OGC API - Features layers for analysis, OneMap's vector tiles with its style
    for display, and the H3 heatmaps, grouped and styled, for what ROLE may see.

    OneMap must be serving at --url: the project is checked against the live service.
    """
    from gis.catalog import Catalog
    from gis.qgis.plan import PlanError, plan
    from gis.security.roles import Policy
    from gis.settings import Settings
    from gis.stats.indicators import Indicators

    if out.suffix.lower() not in (".qgz", ".qgs"):
        raise click.BadParameter("the project file must end in .qgz (or .qgs)", param_hint="OUT")
    settings = Settings.from_env()
    base = (base or settings.server.public_url).rstrip("/")
    catalog = Catalog.load(settings.server.layers_dir)
    try:
        policy = Policy.load(settings.server.roles_path, catalog)
        indicators = Indicators.load(settings.server.indicator_registry, catalog)
        layout = plan(base, catalog, policy, indicators, role, settings.server.title, token=token or None)
    except (PlanError, ValueError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    count = sum(len(g["layers"]) for g in layout["groups"])
    click.echo(f"onemap: writing {out} for role {role}: {count} layers from {base}")
    if not Path(SYSTEM_PYTHON).exists():
        raise click.ClickException(f"{SYSTEM_PYTHON} is missing: install Debian's python3-qgis (scripts/ensure-system test)")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    env.pop("ONEMAP_TOKEN", None)  # the writer gets the token in the plan, on its stdin
    auth_file = out.with_suffix(".auth.xml")
    done = subprocess.run(
        [SYSTEM_PYTHON, str(WRITER), str(out), str(auth_file)], input=json.dumps(layout), capture_output=True, text=True,
        env=env, timeout=900,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise click.ClickException(f"QGIS did not write the project: {done.stderr.strip()[-800:] or 'no output'}")
    report = json.loads(lines[-1])
    for entry in report["layers"]:
        click.echo(f"  {'ok     ' if entry['valid'] else 'INVALID'} {entry['group']} / {entry['name']}")
    if done.returncode != 0 or not report["written"]:
        bad = [e["name"] for e in report["layers"] if not e["valid"]]
        raise click.ClickException(f"the project is incomplete: invalid layers {bad}; is {base} reachable from here?")
    if layout["needs_token"]:
        click.echo(
            f"onemap: left out {', '.join(layout['needs_token'])}: role {role} may read them, but the server "
            f"serves them only with that role's token; pass --token (a key of role {role}) and the project "
            "carries it in a QGIS authentication configuration",
            err=True,
        )
    click.echo(f"onemap: wrote {out}")
    if layout["auth"]:
        click.echo(
            f"onemap: wrote {auth_file} (readable by you alone: it holds the token): import it once in QGIS "
            f"(Settings > Options > Authentication > Utilities > Import) before opening {out.name}; "
            f"its layers use authentication configuration {report['authcfg']}"
        )
