"""Database triggers that keep `onemap_layers` true whoever writes a layer table.

OneMap's own edits, `onemap load` and the departmental systems that write to the database
directly all go through these triggers, so the data version, the exact feature count and the
extent move with every committed change, in the writer's own transaction, and are written in
one place only.

They are part of the schema: migration 0005 puts them on the layer tables a store already has,
and the store on every table it creates or rebuilds (gis.storage.store), so nothing checks for
them at start-up or per write.

PostGIS: one statement-level trigger per operation (transition tables, so a COPY of a million
rows costs one update of `onemap_layers`, not a million), and a NOTIFY on `onemap_changes` with
the changed bbox that the app's listener (gis.edit.listen) turns into tile invalidation.
GeoPackage: row-level triggers (SQLite has no statement triggers) bump the version; SQLite has no
NOTIFY, so the app polls the versions (gis.edit.routes) and invalidates a changed layer whole.
A writer to the GeoPackage needs SpatiaLite or GDAL loaded (ST_MinX...), as the GeoPackage's own
R*Tree triggers already require.

The extent only grows incrementally; it is recomputed from the table only when a deleted or
moved geometry touched its edge (the only case where it may shrink).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

CHANNEL = "onemap_changes"
_OPS = ("insert", "update", "delete")

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION "{schema}".onemap_layer_changed() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  delta bigint := 0;
  written bigint := 0;
  touched box2d;   -- old and new places of every written row: what tiles must redraw
  added box2d;     -- new places: the extent grows to cover them
  moved box2d;     -- old places of deleted or moved rows: the extent may shrink
  ext box2d;
  m record;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    UPDATE "{schema}".onemap_layers
       SET version = version + 1, feature_count = 0, minx = NULL, miny = NULL, maxx = NULL, maxy = NULL,
           updated_at = to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
     WHERE layer = TG_TABLE_NAME RETURNING version INTO m;
    PERFORM pg_notify('{channel}', json_build_object(
      'schema', TG_TABLE_SCHEMA, 'layer', TG_TABLE_NAME, 'version', m.version, 'bbox', NULL)::text);
    RETURN NULL;
  ELSIF TG_OP = 'INSERT' THEN
    SELECT count(*), ST_Extent(geom) INTO written, added FROM new_rows;
    delta := written; touched := added;
  ELSIF TG_OP = 'DELETE' THEN
    SELECT count(*), ST_Extent(geom) INTO written, moved FROM old_rows;
    delta := -written; touched := moved;
  ELSE
    SELECT count(*), ST_Extent(geom) INTO written, added FROM new_rows;
    SELECT ST_Extent(geom) INTO touched FROM (SELECT geom FROM new_rows UNION ALL SELECT geom FROM old_rows) r;
    SELECT ST_Extent(o.geom) INTO moved FROM old_rows o LEFT JOIN new_rows n ON n.id = o.id
     WHERE n.id IS NULL OR n.geom IS DISTINCT FROM o.geom;
  END IF;
  IF written = 0 THEN
    RETURN NULL;  -- a statement that matched no row changed nothing
  END IF;
  SELECT * INTO m FROM "{schema}".onemap_layers WHERE layer = TG_TABLE_NAME FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF m.minx IS NULL OR (moved IS NOT NULL AND (ST_XMin(moved) <= m.minx OR ST_YMin(moved) <= m.miny
                                               OR ST_XMax(moved) >= m.maxx OR ST_YMax(moved) >= m.maxy)) THEN
    EXECUTE format('SELECT ST_Extent(geom) FROM %I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME) INTO ext;
  ELSIF added IS NULL THEN
    ext := ST_MakeBox2D(ST_Point(m.minx, m.miny), ST_Point(m.maxx, m.maxy));
  ELSE
    ext := ST_MakeBox2D(ST_Point(LEAST(m.minx, ST_XMin(added)), LEAST(m.miny, ST_YMin(added))),
                        ST_Point(GREATEST(m.maxx, ST_XMax(added)), GREATEST(m.maxy, ST_YMax(added))));
  END IF;
  UPDATE "{schema}".onemap_layers
     SET version = m.version + 1, feature_count = m.feature_count + delta,
         minx = ST_XMin(ext), miny = ST_YMin(ext), maxx = ST_XMax(ext), maxy = ST_YMax(ext),
         updated_at = to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
   WHERE layer = TG_TABLE_NAME;
  PERFORM pg_notify('{channel}', json_build_object(
    'schema', TG_TABLE_SCHEMA, 'layer', TG_TABLE_NAME, 'version', m.version + 1,
    'bbox', json_build_array(ST_XMin(touched), ST_YMin(touched), ST_XMax(touched), ST_YMax(touched)))::text);
  RETURN NULL;
END
$fn$
"""


# Another system that moves a geometry seldom knows the H3 cell (gis.hexagons): it is set NULL so
# the app refills it (FeatureWriter.backfill_h3). OneMap's own writer sets both and says so.
_PG_H3_FUNCTION = """
CREATE OR REPLACE FUNCTION "{schema}".onemap_h3_stale() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  IF NEW.geom IS DISTINCT FROM OLD.geom AND NEW.h3 IS NOT DISTINCT FROM OLD.h3
     AND coalesce(current_setting('onemap.writer', true), '') <> 'on' THEN
    NEW.h3 := NULL;
  END IF;
  RETURN NEW;
END
$fn$
"""


def _pg_triggers(schema: str, table: str) -> list[str]:
    qualified = f'"{schema}"."{table}"'
    function = f'"{schema}".onemap_layer_changed()'
    statements = [
        f'CREATE OR REPLACE TRIGGER onemap_changed_insert AFTER INSERT ON {qualified} '
        f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}",
        f'CREATE OR REPLACE TRIGGER onemap_changed_update AFTER UPDATE ON {qualified} '
        f"REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}",
        f'CREATE OR REPLACE TRIGGER onemap_changed_delete AFTER DELETE ON {qualified} '
        f"REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}",
        f"CREATE OR REPLACE TRIGGER onemap_changed_truncate AFTER TRUNCATE ON {qualified} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}",
        f"CREATE OR REPLACE TRIGGER onemap_changed_h3 BEFORE UPDATE OF geom ON {qualified} "
        f'FOR EACH ROW EXECUTE FUNCTION "{schema}".onemap_h3_stale()',
    ]
    return statements


_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"


def _sqlite_triggers(table: str) -> list[str]:
    t = f'"{table}"'
    grow = {
        "minx": "min(coalesce(minx, ST_MinX(NEW.geom)), ST_MinX(NEW.geom))",
        "miny": "min(coalesce(miny, ST_MinY(NEW.geom)), ST_MinY(NEW.geom))",
        "maxx": "max(coalesce(maxx, ST_MaxX(NEW.geom)), ST_MaxX(NEW.geom))",
        "maxy": "max(coalesce(maxy, ST_MaxY(NEW.geom)), ST_MaxY(NEW.geom))",
    }
    # the extent is rescanned only when the row that left was on its edge
    edge = {
        "minx": ("ST_MinX(OLD.geom) <= minx", f"(SELECT min(ST_MinX(geom)) FROM {t})"),
        "miny": ("ST_MinY(OLD.geom) <= miny", f"(SELECT min(ST_MinY(geom)) FROM {t})"),
        "maxx": ("ST_MaxX(OLD.geom) >= maxx", f"(SELECT max(ST_MaxX(geom)) FROM {t})"),
        "maxy": ("ST_MaxY(OLD.geom) >= maxy", f"(SELECT max(ST_MaxY(geom)) FROM {t})"),
    }
    where = f"WHERE layer = '{table}'"
    insert = ", ".join(f"{c} = {e}" for c, e in grow.items())
    delete = ", ".join(f"{c} = CASE WHEN {cond} THEN {scan} ELSE {c} END" for c, (cond, scan) in edge.items())
    update = ", ".join(
        f"{c} = CASE WHEN OLD.geom IS NOT NEW.geom AND {cond} THEN {scan} ELSE {grow[c]} END"
        for c, (cond, scan) in edge.items()
    )
    return [
        f'CREATE TRIGGER IF NOT EXISTS "onemap_{table}_insert" AFTER INSERT ON {t} BEGIN '
        f"UPDATE onemap_layers SET version = version + 1, feature_count = feature_count + 1, {insert}, "
        f"updated_at = {_NOW} {where}; END",
        f'CREATE TRIGGER IF NOT EXISTS "onemap_{table}_update" AFTER UPDATE ON {t} BEGIN '
        f"UPDATE onemap_layers SET version = version + 1, {update}, updated_at = {_NOW} {where}; END",
        f'CREATE TRIGGER IF NOT EXISTS "onemap_{table}_delete" AFTER DELETE ON {t} BEGIN '
        f"UPDATE onemap_layers SET version = version + 1, feature_count = feature_count - 1, {delete}, "
        f"updated_at = {_NOW} {where}; END",
    ]


def installed(conn: Connection, postgis: bool, schema: str | None, table: str) -> bool:
    if postgis:
        found = conn.execute(
            text(
                "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :s AND c.relname = :t AND t.tgname LIKE 'onemap_changed_%'"
            ),
            {"s": schema, "t": table},
        ).scalar()
        return found == 5
    found = conn.execute(
        text("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t AND name LIKE :p"),
        {"t": table, "p": f"onemap_{table}_%"},
    ).scalar()
    return found == len(_OPS)


def install(conn: Connection, postgis: bool, schema: str | None, table: str) -> None:
    """Install the triggers on one layer table (idempotent; cheap when they are there)."""
    if installed(conn, postgis, schema, table):
        return
    if postgis:
        conn.execute(text(_PG_FUNCTION.format(schema=schema, channel=CHANNEL)))
        conn.execute(text(_PG_H3_FUNCTION.format(schema=schema)))
        for statement in _pg_triggers(schema, table):
            conn.execute(text(statement))
    else:
        for statement in _sqlite_triggers(table):
            conn.exec_driver_sql(statement)
