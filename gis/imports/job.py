"""One import: read, map, check every row, then write all of it in one transaction (or nothing).

`run_import` is what `onemap load` calls, and what a test or a server process calls in-process
(passing its TileService, so the touched tiles are dropped as soon as the import commits; a
separate server process notices the new data version through its poll of `onemap_layers`).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gis.imports import osm, readers
from gis.imports.mapping import Mapping
from gis.imports.validate import Rejected, check
from gis.imports.write import Written, upsert
from gis.storage.store import Store

# phase name, done, total (total None while unknown)
ProgressFn = Callable[[str, int, int | None], None]


class ImportRejected(Exception):
    """Some rows are invalid and --skip-invalid was not given: nothing was written."""

    def __init__(self, report: "Report"):
        super().__init__(f"{len(report.rejected)} of {report.read} rows are invalid")
        self.report = report


@dataclass
class Report:
    layer: str
    source: str
    read: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    written: Written | None = None
    seconds: float = 0.0
    rejects_file: Path | None = None

    @property
    def loaded(self) -> int:
        return self.read - len(self.rejected) if self.written else 0

    @property
    def rows_per_second(self) -> float:
        return self.read / self.seconds if self.seconds else 0.0


def run_import(
    store: Store,
    path: Path,
    layer_id: str,
    mapping: Mapping | None = None,
    *,
    crs: str | None = None,
    extent: tuple[float, float, float, float] | None = None,
    skip_invalid: Path | None = None,
    dry_run: bool = False,
    source_layer: str | None = None,
    xy: tuple[str | None, str | None] = (None, None),
    tiles=None,
    progress: ProgressFn | None = None,
) -> Report:
    started = time.perf_counter()
    layer = store.catalog[layer_id]
    mapping = mapping or Mapping.build(layer)
    report = Report(layer_id, path.name)
    tell = progress or (lambda *_: None)

    tell("reading", 0, None)
    if readers.kind_of(path) == "osm":
        if not mapping.section.get("select"):
            raise readers.SourceError(
                f"{path.name} is OpenStreetMap data: give a mapping with an OSM section for {layer_id} "
                "(--mapping data/osm-mapping.yml is the shipped one)"
            )
        source = osm.read(path, mapping.section, layer.geometry.value, lambda n: tell("reading", n, None))
    else:
        source = readers.read(path, source_layer, *xy)
    report.read = len(source)
    tell("reading", len(source), len(source))

    mapping = mapping.complete(source.field_names)
    tell("checking", 0, len(source))
    checked = check(source, mapping, crs, extent, lambda n: tell("checking", n, len(source)))
    tell("checking", len(source), len(source))
    report.rejected = checked.rejected

    if checked.rejected and skip_invalid is not None:
        write_rejects(skip_invalid, source, checked.rejected)
        report.rejects_file = skip_invalid
    if checked.rejected and skip_invalid is None:
        report.seconds = time.perf_counter() - started
        raise ImportRejected(report)
    if dry_run:
        report.seconds = time.perf_counter() - started
        return report

    tell("writing", 0, len(checked))
    written = upsert(store, layer, checked, lambda n: tell("writing", n, len(checked)))
    report.written = written
    tell("writing", len(checked), len(checked))
    if tiles is not None and written.bbox is not None:
        tiles.invalidate(layer_id, written.bbox)
    report.seconds = time.perf_counter() - started
    return report


def write_rejects(path: Path, source: readers.Source, rejected: list[Rejected]) -> None:
    """One line per rejected row: where it was, why, its geometry (WKT, source CRS), its fields."""
    fields = source.field_names
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["row", "source_id", "reasons", "wkt", *fields])
        for item in rejected:
            i = item.row - 1
            geom = source.geoms[i]
            writer.writerow(
                [item.row, item.source_id or "", "; ".join(item.reasons), "" if geom is None else geom.wkt,
                 *(_cell(source.fields[f][i]) for f in fields)]
            )


def _cell(value) -> str:
    return "" if value is None else str(value)
