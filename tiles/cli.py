"""`onemap seed` and `onemap export`: tiles rendered ahead of time, into the cache or into a file.

- `seed` fills the disk tile cache the server reads (ONEMAP_TILE_CACHE_DIR), so the first visitor
  of an area gets cached tiles. Tiles already cached are kept; it ends with the tiles/s achieved.
- `export` writes a tileset's WebMercatorQuad tiles to one file for offline or static hosting:
  PMTiles v3 (written with the `pmtiles` package) or MBTiles 1.3 (SQLite; TMS row order,
  gzip-compressed tiles, `metadata` with the TileJSON `json` field). Empty tiles are left out.
  Tiles are written as the cache keeps them, gzipped once when rendered (tiles.cache), which is
  what PMTiles readers expect of `tile_compression: gzip` and MBTiles readers of vector tiles.

Both render through the same `TileService` as the server, so a file holds byte-for-byte what the
API would answer — to the role given with `--role` (default `public`, the anonymous caller),
limited to `--streets`/`--grids` when given, exactly as a token of that role and limits would
get (gis.security). Each run is one entry in the audit log. Progress goes to stderr: a bar on a
terminal, plain lines otherwise (logs).
"""

from __future__ import annotations

import json
import math
import sqlite3
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click

from tiles.matrix import GRIDS

WEB = "WebMercatorQuad"
DATASET = "onemap"  # tiles.engine.DATASET, without importing the engine for --help


def _bbox(ctx, param, value: str | None):
    if value is None:
        return None
    parts = value.split(",")
    try:
        numbers = tuple(float(p) for p in parts)
    except ValueError:
        numbers = ()
    if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
        raise click.BadParameter(f"{value!r}: give four numbers minlon,minlat,maxlon,maxlat (CRS84)")
    minx, miny, maxx, maxy = numbers
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90 and -90 <= maxy <= 90):
        raise click.BadParameter(f"{value!r}: longitudes must lie in -180..180 and latitudes in -90..90")
    if minx > maxx or miny > maxy:
        raise click.BadParameter(f"{value!r}: the lower corner (minlon,minlat) exceeds the upper one")
    return numbers


def _codes(ctx, param, value: str | None):
    if value is None:
        return None
    codes = [c.strip() for c in value.split(",") if c.strip()]
    if not codes:
        raise click.BadParameter(f"{value!r}: give one or more codes separated by commas")
    return codes


def _common(function):
    options = [
        click.option("--tileset", default=DATASET, show_default=True, help=f"'{DATASET}' (every layer) or a layer id"),
        click.option("--minzoom", type=click.IntRange(0, 30), help="first level"),
        click.option("--maxzoom", type=click.IntRange(0, 30), help="last level"),
        click.option("--bbox", callback=_bbox, metavar="MINLON,MINLAT,MAXLON,MAXLAT",
                     help="area to cover (CRS84); default: the extent of the tileset's data"),
        click.option("--jobs", type=click.IntRange(1, 64), default=4, show_default=True, help="tiles rendered at once"),
        click.option("--database-url", envvar="ONEMAP_DATABASE_URL", default=None, help="postgresql://… or gpkg:///…"),
        click.option("--role", default="public", show_default=True,
                     help="render as this configured role sees the tiles (layers, masking, audit)"),
        click.option("--streets", callback=_codes, metavar="CODE,…", help="only these streets' features, as a limited token"),
        click.option("--grids", callback=_codes, metavar="CODE,…", help="only these grids' features, as a limited token"),
    ]
    for option in reversed(options):
        function = option(function)
    return function


class _Job:
    """The store, the tile service and the list of tiles one command works through."""

    def __init__(self, database_url, tileset, tms, minzoom, maxzoom, bbox, cache_dir, role, streets, grids):
        from gis.security import principal as principals
        from gis.security.roles import Policy
        from gis.settings import Settings
        from gis.storage.store import Store
        from tiles.api import TileService
        from tiles.metadata import tileset_zoom, union_bbox

        from gis.security.encryption import DataKeyError

        grid = GRIDS.get(tms)
        if grid is None:
            raise click.BadParameter(f"unknown tile matrix set {tms!r}; use one of {', '.join(GRIDS)}", param_hint="--tms")
        overrides = {"database_url": database_url} if database_url else {}
        try:
            settings = Settings.from_env(**overrides)
        except Exception as err:  # pydantic names the bad variable
            raise click.ClickException(f"bad configuration: {err}") from None
        try:
            policy = Policy.load(settings.server.roles_path)
            self.principal = principals.for_role(policy, role, f"cli:{_user()}", streets, grids)
        except KeyError:
            raise click.BadParameter(f"no role {role!r}; roles are {', '.join(policy.roles)}", param_hint="--role") from None
        except (OSError, ValueError) as err:
            raise click.ClickException(f"cannot read the roles: {_first_line(err)}") from None
        self._as = principals.use(self.principal)  # every step below, and each render thread, runs as it
        self._as.__enter__()
        try:
            self.store = Store.open(settings)
            self.store.verify_key()  # a store sealed with another data key: say so before rendering
            built = self.store.is_built()
        except DataKeyError as err:
            raise click.ClickException(str(err)) from None
        except Exception as err:
            raise click.ClickException(f"cannot open the store {settings.database.database_url}: {_first_line(err)}") from None
        if not built:
            self.store.close()
            raise click.ClickException("the store holds no layers yet: load data first (onemap demo)")
        self.service = TileService(self.store, settings, cache_dir=cache_dir, memory_bytes=8 * 2**20)
        # the tilesets of the configured roles' public (gis.security): what the cache serves anonymously
        known = [t for t in sorted(self.service.engine.tilesets) if _visible(self.service.engine, t)]
        if tileset not in known:
            self.close()
            raise click.BadParameter(
                f"unknown tileset {tileset!r} for role {role}; use one of {', '.join(known)}", param_hint="--tileset"
            )
        self.tileset = self.service.engine.tileset(tileset)
        self.grid = grid
        zoom = tileset_zoom(grid, self.tileset) or (grid.minzoom, grid.minzoom)
        self.minzoom = zoom[0] if minzoom is None else minzoom
        self.maxzoom = min(zoom[1], self.minzoom + 4) if maxzoom is None else maxzoom
        problem = None
        if self.minzoom > self.maxzoom:
            problem = f"--minzoom {self.minzoom} exceeds --maxzoom {self.maxzoom}"
        elif self.minzoom < grid.minzoom or self.maxzoom > grid.maxzoom:
            problem = f"{grid.id} has levels {grid.minzoom}..{grid.maxzoom}; asked for {self.minzoom}..{self.maxzoom}"
        if problem:
            self.close()
            raise click.UsageError(problem)
        self.bbox = bbox or union_bbox(self.tileset, self.service.meta)
        if self.bbox is None:
            self.close()
            raise click.ClickException(f"tileset {tileset!r} holds no features: give --bbox to cover an area anyway")

    def tiles(self) -> Iterator[tuple[int, int, int]]:
        for z in range(self.minzoom, self.maxzoom + 1):
            x0, y0, x1, y1 = self.grid.tile_range(z, self.bbox)
            for x in range(x0, x1 + 1):
                for y in range(y0, y1 + 1):
                    yield z, x, y

    def count(self) -> int:
        total = 0
        for z in range(self.minzoom, self.maxzoom + 1):
            x0, y0, x1, y1 = self.grid.tile_range(z, self.bbox)
            total += max(0, x1 - x0 + 1) * max(0, y1 - y0 + 1)
        return total

    def render(self, tile: tuple[int, int, int]) -> tuple[tuple[int, int, int], bytes]:
        """The tile gzipped, as the cache stores it and the server sends it (b"" when empty)."""
        from gis.security.principal import use

        z, x, y = tile
        with use(self.principal):  # pool threads do not inherit the context
            return tile, self.service.produce(self.tileset.id, self.grid.id, z, x, y).gz

    def audit(self, action: str, tiles: int, detail: dict) -> None:
        """One entry per run, like a read of the tileset by this principal; written before exit."""
        from gis.security import audit

        minzoom, maxzoom = self.minzoom, self.maxzoom
        layers = [layer.id for layer in self.tileset.layers if layer.id in self.store.catalog]
        audit.record(self.store, action, ",".join(layers), bbox=[round(v, 7) for v in self.bbox],
                     detail={"tileset": self.tileset.id, "tms": self.grid.id, "zoom": f"{minzoom}-{maxzoom}",
                             "tiles": tiles, **detail}, principal=self.principal)
        audit.flush(self.store)

    def run(self, jobs: int, label: str) -> Iterator[tuple[tuple[int, int, int], bytes]]:
        """Every tile with its gzipped bytes (b"" when empty), in order, with progress on stderr."""
        total = self.count()
        with ThreadPoolExecutor(jobs) as pool, _Progress(total, label) as progress:
            # bounded look-ahead: at most a few hundred rendered tiles wait to be consumed
            pending: list = []
            for tile in self.tiles():
                pending.append(pool.submit(self.render, tile))
                if len(pending) >= jobs * 16:
                    yield pending.pop(0).result()
                    progress.advance()
            for future in pending:
                yield future.result()
                progress.advance()

    def close(self) -> None:
        service = getattr(self, "service", None)
        if service is not None:
            service.close()  # the disk cache is written behind: store what is queued
        self.store.close()
        self._as.__exit__(None, None, None)


class _Progress:
    """click's bar on a terminal; otherwise a line now and then (CI logs, redirected output)."""

    def __init__(self, total: int, label: str):
        self.total, self.label, self.done = total, label, 0
        self.tty = sys.stderr.isatty()
        self.bar = click.progressbar(length=total, label=label, file=sys.stderr) if self.tty else None
        self.started = self.last = time.monotonic()

    def __enter__(self):
        if self.bar is not None:
            self.bar.__enter__()
        else:
            click.echo(f"{self.label}: {self.total} tiles", err=True)
        return self

    def advance(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            return
        now = time.monotonic()
        if now - self.last >= 2 or self.done == self.total:
            self.last = now
            click.echo(f"{self.label}: {self.done}/{self.total} tiles ({100 * self.done / max(self.total, 1):.0f}%)", err=True)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def _visible(engine, tileset_id: str) -> bool:
    try:
        engine.tileset(tileset_id)
    except KeyError:
        return False
    return True


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no name for this uid (containers)
        return "unknown"


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:.1f} tiles/s" if seconds > 0 else "n/a tiles/s"


@click.command()
@_common
@click.option("--tms", default=WEB, show_default=True, help=f"tile matrix set: {', '.join(GRIDS)}")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="disk cache to fill; default ONEMAP_TILE_CACHE_DIR")
def seed(tileset, minzoom, maxzoom, bbox, jobs, database_url, role, streets, grids, tms, cache_dir) -> None:
    """Render tiles into the disk tile cache the server reads.

    Every tile of the tileset at levels MINZOOM..MAXZOOM over BBOX is rendered (or found already
    cached) and stored; the server then answers them without touching the database.
    """
    if cache_dir is None:
        from gis.settings import ServerSettings

        cache_dir = ServerSettings().tile_cache_dir
        if cache_dir is None:
            raise click.UsageError("no tile cache directory: set ONEMAP_TILE_CACHE_DIR or give --cache-dir")
    job = _Job(database_url, tileset, tms, minzoom, maxzoom, bbox, cache_dir, role, streets, grids)
    try:
        started = time.monotonic()
        total = nonempty = 0
        for _, data in job.run(jobs, f"seed {job.tileset.id} {job.grid.id} z{job.minzoom}-{job.maxzoom} as {role}"):
            total += 1
            nonempty += bool(data)
        seconds = time.monotonic() - started
        job.audit("seed", total, {"with_features": nonempty, "cache": str(cache_dir)})
    finally:
        job.close()
    click.echo(
        f"seeded {total} tiles ({nonempty} with features) of {tileset} on {tms} z{job.minzoom}-{job.maxzoom} "
        f"into {cache_dir} in {seconds:.1f} s: {_rate(total, seconds)}"
    )


@click.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@_common
@click.option("--force", is_flag=True, help="replace OUT if it exists")
def export(out: Path, tileset, minzoom, maxzoom, bbox, jobs, database_url, role, streets, grids, force) -> None:
    """Write a tileset's WebMercatorQuad tiles to OUT.pmtiles (PMTiles v3) or OUT.mbtiles (MBTiles).

    Levels default to the tileset's first five; the area to its data's extent. Empty tiles are
    left out of the file.
    """
    kind = out.suffix.lower()
    if kind not in (".pmtiles", ".mbtiles"):
        raise click.BadParameter(f"{out.name!r}: the file name must end in .pmtiles or .mbtiles", param_hint="OUT")
    if out.exists() and not force:
        raise click.UsageError(f"{out} exists; give --force to replace it")
    if not out.parent.exists():
        raise click.UsageError(f"directory {out.parent} does not exist")
    job = _Job(database_url, tileset, WEB, minzoom, maxzoom, bbox, None, role, streets, grids)
    tmp = out.with_name(out.name + ".part")
    tmp.unlink(missing_ok=True)
    try:
        started = time.monotonic()
        doc = _tilejson(job)
        label = f"export {job.tileset.id} z{job.minzoom}-{job.maxzoom} as {role} to {out.name}"
        if kind == ".pmtiles":
            written, total = _write_pmtiles(tmp, job, doc, label, jobs)
        else:
            written, total = _write_mbtiles(tmp, job, doc, label, jobs)
        seconds = time.monotonic() - started
        tmp.replace(out)
        job.audit("export", total, {"with_features": written, "file": str(out.resolve())})
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        job.close()
    click.echo(
        f"exported {written} tiles with features (of {total} covered) of {tileset} z{job.minzoom}-{job.maxzoom} "
        f"to {out} in {seconds:.1f} s: {_rate(total, seconds)}"
    )


def _tilejson(job: _Job) -> dict:
    from tiles import metadata

    doc = metadata.tilejson(job.service.base, job.tileset, job.service.versions.get(job.tileset.id, 0), job.service.meta)
    doc["bounds"] = list(job.bbox)
    doc["minzoom"], doc["maxzoom"] = job.minzoom, job.maxzoom
    doc["center"] = [(job.bbox[0] + job.bbox[2]) / 2, (job.bbox[1] + job.bbox[3]) / 2, job.minzoom]
    doc.pop("tiles", None)  # the file is the source: no URL
    return doc


def _write_pmtiles(path: Path, job: _Job, doc: dict, label: str, jobs: int) -> tuple[int, int]:
    from pmtiles.tile import Compression, TileType, zxy_to_tileid
    from pmtiles.writer import Writer

    # PMTiles wants tiles in tile-id (Hilbert) order for a clustered archive: render first, then sort
    tiles: list[tuple[int, bytes]] = []
    total = 0
    for (z, x, y), data in job.run(jobs, label):
        total += 1
        if data:
            tiles.append((zxy_to_tileid(z, x, y), data))  # gzipped already: the header says GZIP
    if not tiles:
        raise click.ClickException("no tile in that range holds a feature: nothing to export")
    tiles.sort(key=lambda t: t[0])
    minx, miny, maxx, maxy = job.bbox
    with open(path, "wb") as f:
        writer = Writer(f)
        for tile_id, data in tiles:
            writer.write_tile(tile_id, data)
        writer.finalize(
            {
                "tile_type": TileType.MVT,
                "tile_compression": Compression.GZIP,
                "min_lon_e7": int(minx * 1e7),
                "min_lat_e7": int(miny * 1e7),
                "max_lon_e7": int(maxx * 1e7),
                "max_lat_e7": int(maxy * 1e7),
                "center_zoom": job.minzoom,
                "center_lon_e7": int((minx + maxx) / 2 * 1e7),
                "center_lat_e7": int((miny + maxy) / 2 * 1e7),
            },
            {k: doc[k] for k in ("name", "description", "version", "vector_layers") if k in doc} | {"type": "overlay"},
        )
    return len(tiles), total


def _write_mbtiles(path: Path, job: _Job, doc: dict, label: str, jobs: int) -> tuple[int, int]:
    conn = sqlite3.connect(path)
    try:
        conn.executescript(
            """
            CREATE TABLE metadata (name TEXT, value TEXT);
            CREATE UNIQUE INDEX metadata_name ON metadata (name);
            CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);
            CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);
            """
        )
        bounds = ",".join(f"{v:.7f}" for v in job.bbox)
        center = ",".join(f"{v:.7f}" for v in doc["center"][:2]) + f",{job.minzoom}"
        rows = {
            "name": doc["name"],
            "description": doc.get("description") or doc["name"],
            "version": "1.0.0",
            "type": "overlay",
            "format": "pbf",
            "bounds": bounds,
            "center": center,
            "minzoom": str(job.minzoom),
            "maxzoom": str(job.maxzoom),
            "json": json.dumps({"vector_layers": doc["vector_layers"]}),
        }
        conn.executemany("INSERT INTO metadata VALUES (?, ?)", rows.items())
        written = total = 0
        batch = []
        for (z, x, y), data in job.run(jobs, label):
            total += 1
            if not data:
                continue
            written += 1
            batch.append((z, x, (1 << z) - 1 - y, data))  # gzipped already; MBTiles rows count from the south
            if len(batch) >= 500:
                conn.executemany("INSERT INTO tiles VALUES (?, ?, ?, ?)", batch)
                batch.clear()
        conn.executemany("INSERT INTO tiles VALUES (?, ?, ?, ?)", batch)
        conn.commit()
        if not written:
            raise click.ClickException("no tile in that range holds a feature: nothing to export")
        return written, total
    finally:
        conn.close()
