# OneMap service image. Build: docker build -t onemap .   Run: see README.md ("Deployment").

# Browser assets (MapLibre GL JS for the wall, Leaflet/Bootstrap/Swagger UI for the HTML pages)
# come from the npm registry at build time, never from a CDN at run time.
FROM node:20-slim AS web
WORKDIR /web
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM python:3.12-slim

# mod_spatialite for the embedded GeoPackage store; pyproj/rasterio/shapely wheels bundle
# their own PROJ/GDAL/GEOS. The CJK font is what the wall's label glyphs are rendered from.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libsqlite3-mod-spatialite fonts-wqy-microhei \
 && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin onemap

WORKDIR /app

# Pinned dependencies first: this layer is reused until requirements.lock changes.
COPY requirements.lock ./
RUN pip install -r requirements.lock

# The project, installed in place: layers/, pygeoapi-config.yml and data/ are found beside gis/.
COPY pyproject.toml README.md pygeoapi-config.yml ./
COPY layers ./layers
COPY gis ./gis
COPY tiles ./tiles
COPY --from=web /web/node_modules ./node_modules
RUN pip install --no-deps -e . \
 && mkdir -p /data /app/data \
 && chown onemap:onemap /data /app/data

# The embedded store lives on the /data volume; set ONEMAP_DATABASE_URL=postgresql+psycopg://…
# to serve from PostGIS instead (compose.yml does). Build the demo city into either with
# `onemap demo --scale 0.05`.
ENV ONEMAP_DATABASE_URL=gpkg:///data/onemap.gpkg
VOLUME ["/data"]

USER onemap
EXPOSE 5000

# No curl in the slim image: the check is a few lines of the image's own Python.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:5000/healthz', timeout=4).status == 200 else 1)"]

CMD ["onemap", "serve", "--host", "0.0.0.0", "--port", "5000"]
