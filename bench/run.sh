#!/bin/sh
# OneMap's benchmarks: one command, `make bench` runs it. First the tile benchmark against tipg and
# pygeoapi (issue 3, bench/bench.py), then heatmaps and /stats against the database's own bound
# (issue 4, bench/heatmap.py). BENCH_HEATMAP=0 leaves the second out, BENCH_HEATMAP=only runs it alone.
#   - makes sure PostgreSQL + PostGIS answer (scripts/ensure-postgres) and OneMap's venv exists
#   - builds the scale-1 demo city into database onemap_bench once (skipped when already built;
#     BENCH_REBUILD=1 rebuilds it)
#   - makes bench/.venvs/tipg and bench/.venvs/pygeoapi from PyPI with the Python 3.12 that
#     scripts/find-python finds (once; delete the directory to refresh)
#   - runs bench/bench.py, which prints the table and the goal ratios; raw results go to
#     bench/results/<UTC time>/ (bench/results/latest points at the last run)
#   - runs bench/heatmap.py (options in BENCH_HEATMAP_ARGS, e.g. "--rounds 5"); its results go to
#     bench/results/<UTC time>/heatmap.json
# Extra arguments go to bench.py (bench/run.sh --help lists them). Takes about 10 minutes, plus
# about 3 for the heatmaps.
set -eu
cd "$(dirname "$0")/.."

DB_URL="${BENCH_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/onemap_bench}"
SCALE="${BENCH_SCALE:-1}"
HEATMAP="${BENCH_HEATMAP:-1}"

scripts/ensure-venv requirements.lock
ONEMAP_TEST_POSTGRES_URL="$DB_URL" scripts/ensure-postgres

# the city, once: `onemap demo` itself skips a store that already holds one
if [ "${BENCH_REBUILD:-0}" = 1 ]; then force=--force; else force=; fi
.venv/bin/python -m gis.cli demo --scale "$SCALE" --database-url "$DB_URL" $force

heatmaps() {
  # shellcheck disable=SC2086  # BENCH_HEATMAP_ARGS is a list of options
  .venv/bin/python bench/heatmap.py --database-url "$DB_URL" ${BENCH_HEATMAP_ARGS:-}
}
if [ "$HEATMAP" = only ]; then
  heatmaps
  exit
fi

command -v wrk >/dev/null 2>&1 || {
  echo "bench: wrk is missing; installing Debian's wrk" >&2
  if [ "$(id -u)" = 0 ]; then apt-get install -y -qq wrk; else sudo apt-get install -y -qq wrk; fi
}

python=$(scripts/find-python)
mkdir -p bench/.venvs bench/results
make_venv() {  # name, then the pip requirements
  name=$1; shift
  dir=bench/.venvs/$name
  stamp="$dir/.bench-$(echo "$*" | sha256sum | cut -c1-12)"
  [ -f "$stamp" ] && return 0
  echo "bench: making $dir ($*)"
  rm -rf "$dir"
  "$python" -m venv "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check "$@"
  touch "$stamp"
}
# every server runs on the same uvicorn with its C parser and event loop (OneMap's own venv has them)
make_venv tipg tipg uvicorn httptools uvloop
# pygeoapi's MVT-postgresql provider imports geoalchemy2 + sqlalchemy (pygeoapi.provider.sql) and
# connects with psycopg2; the ASGI app is pygeoapi.starlette_app
make_venv pygeoapi pygeoapi uvicorn httptools uvloop starlette psycopg2-binary geoalchemy2 sqlalchemy pygeofilter shapely

.venv/bin/python bench/bench.py --database-url "$DB_URL" "$@"
if [ "$HEATMAP" != 0 ]; then
  heatmaps
fi
