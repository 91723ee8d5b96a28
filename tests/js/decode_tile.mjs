// Decode Mapbox Vector Tiles with MapLibre's decoder (@mapbox/vector-tile + pbf) and print JSON:
// {"<file>": {"<layer>": {"version", "extent", "count", "features": [{"id", "type", "properties",
// "geometry": [[[x, y], ...], ...]}]}}}. Used by tests/test_tiles_clients.py to compare with Python.
import { readFileSync } from "node:fs";
import { VectorTile } from "@mapbox/vector-tile";
import Pbf from "pbf";

// pbf reads numbers through a DataView over the whole ArrayBuffer: a Node Buffer may sit at an
// offset inside a shared pool, so copy it into an ArrayBuffer of its own first (a fresh Uint8Array).

const out = {};
for (const file of process.argv.slice(2)) {
  const tile = new VectorTile(new Pbf(new Uint8Array(readFileSync(file))));
  const layers = {};
  for (const [name, layer] of Object.entries(tile.layers)) {
    const features = [];
    for (let i = 0; i < layer.length; i++) {
      const feature = layer.feature(i);
      features.push({
        id: feature.id,
        type: ["Unknown", "Point", "LineString", "Polygon"][feature.type],
        properties: feature.properties,
        geometry: feature.loadGeometry().map((ring) => ring.map((p) => [p.x, p.y])),
      });
    }
    layers[name] = { version: layer.version, extent: layer.extent, count: layer.length, features };
  }
  out[file] = layers;
}
process.stdout.write(JSON.stringify(out));
