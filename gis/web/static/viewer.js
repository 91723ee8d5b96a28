/* OneMap map viewer: one collection's style (/collections/{id}/styles/default/style.json) or the whole
 * city's (/styles/onemap/style.json), drawn as the server serves it, fitted to the tiles' bounds.
 *
 * A click opens the feature's item (/collections/{id}/items/{fid}?f=json): the attributes the
 * caller's role may see, masked by the server exactly as for any client. Hexagons (a layer's
 * summary below its own zoom) show their tile properties, which are already aggregates.
 * Tokens: a role allowed a URL token (the wall's, `url_token` in roles.yml) opens the viewer with
 * ?token=; like the wall, every request to OneMap then carries it (MapLibre's transformRequest and
 * our own fetches). Browsers cannot attach a Bearer header to a page they open, so other roles'
 * keys are for API clients, not for this page.
 */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("viewer-config").textContent);
  const text = config.text;
  const root = config.root || "";
  const token = new URLSearchParams(location.search).get("token");
  const origins = new Set([location.origin]);
  try { origins.add(new URL(config.base).origin); } catch (e) { /* no base: same origin only */ }
  const viewer = (window.onemapViewer = { config, ready: false, map: null, popups: 0 });

  function withToken(url) {
    const u = new URL(url, location.href);
    if (!token || !origins.has(u.origin)) return u.toString();
    u.searchParams.set("token", token);
    return u.toString();
  }

  async function getJSON(path) {
    const response = await fetch(withToken(root + path), { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }

  function showProblem(message) {
    const box = document.getElementById("problem");
    box.textContent = `${text.load_failed}: ${message}`;
    box.hidden = false;
  }

  // links of the page carry the token on, as the wall's do
  if (token) {
    for (const link of document.querySelectorAll("a[href]")) link.href = withToken(link.href);
  }

  // -- style: the server's own, with name labels (glyphs from OneMap's /fonts) -----------------------
  function isHexagons(layer) {
    return (layer["source-layer"] || "").startsWith("h3_");
  }

  function withLabels(style) {
    const labels = [];
    for (const layer of style.layers) {
      const own = config.layers[layer["source-layer"]];
      // names beside points only: polygons' and lines' names would crowd a map of a whole layer
      if (!own || !own.title_field || layer.type !== "circle") continue;
      labels.push({
        id: `label:${layer.id}`, type: "symbol", source: layer.source, "source-layer": layer["source-layer"],
        minzoom: Math.max(layer.minzoom || 0, 15), maxzoom: layer.maxzoom || 24,
        metadata: { "onemap:label": true },
        layout: {
          "text-field": ["get", own.title_field], "text-font": [config.font], "text-size": 12,
          "text-offset": [0, 1.1], "text-anchor": "top",
          "text-optional": true,
        },
        paint: { "text-color": "#e6f0ff", "text-halo-color": "#0b1a2e", "text-halo-width": 1.4 },
      });
    }
    style.layers.push(...labels);
    return style;
  }

  // -- the layer panel: one line per drawn layer, a swatch of its colour, a switch ------------------
  function colourOf(layer) {
    const paint = layer.paint || {};
    const colour = paint["fill-extrusion-color"] || paint["fill-color"] || paint["line-color"] || paint["circle-color"];
    if (typeof colour === "string") return colour;
    // match/step/interpolate: the colours it names, as a gradient
    const found = JSON.stringify(colour || "").match(/#[0-9a-fA-F]{3,8}\b|rgba?\([^)]*\)/g) || ["#888"];
    return found.length > 1 ? `linear-gradient(to right, ${found.join(", ")})` : found[0];
  }

  function renderPanel(map) {
    const list = document.getElementById("layer-list");
    list.textContent = "";
    for (const layer of map.getStyle().layers) {
      const meta = layer.metadata || {};
      if (layer.type === "background" || layer.type === "symbol") continue;
      const item = document.createElement("li");
      item.dataset.layer = layer.id;
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = (layer.layout || {}).visibility !== "none";
      box.id = `toggle-${layer.id}`;
      box.addEventListener("change", () => {
        const visibility = box.checked ? "visible" : "none";
        map.setLayoutProperty(layer.id, "visibility", visibility);
        const label = map.getLayer(`label:${layer.id}`);
        if (label) map.setLayoutProperty(label.id, "visibility", visibility);
        item.classList.toggle("off", !box.checked);
      });
      const swatch = document.createElement("span");
      swatch.className = `swatch ${layer.type === "circle" ? "circle" : layer.type === "line" ? "line" : "fill"}`;
      swatch.style.background = colourOf(layer);
      const label = document.createElement("label");
      label.htmlFor = box.id;
      label.textContent = (config.lang === "zh" ? meta["onemap:title_zh"] : meta["onemap:title"]) || layer.id;
      item.append(box, swatch, label);
      list.appendChild(item);
    }
  }

  // -- popups -----------------------------------------------------------------------------------------
  function cell(value) {
    if (value === null || value === undefined || value === "") return "—";
    return typeof value === "object" ? JSON.stringify(value) : String(value);
  }

  function attributeTable(properties) {
    const names = Object.keys(properties);
    if (!names.length) {
      const p = document.createElement("p");
      p.textContent = text.no_attributes;
      return p;
    }
    const table = document.createElement("table");
    table.className = "attributes";
    for (const name of names) {
      const row = table.insertRow();
      const th = document.createElement("th");
      th.textContent = name;
      row.appendChild(th);
      const td = row.insertCell();
      td.textContent = cell(properties[name]);
      td.dataset.name = name;
    }
    return table;
  }

  function popupBody(heading, properties, link) {
    const body = document.createElement("div");
    body.className = "feature-popup";
    const h = document.createElement("h3");
    h.textContent = heading;
    body.appendChild(h);
    body.appendChild(attributeTable(properties));
    if (link) {
      const a = document.createElement("a");
      a.className = "features-page";
      a.href = withToken(link);
      a.textContent = text.open_features;
      a.target = "_blank";
      a.rel = "noopener";
      body.appendChild(a);
    }
    return body;
  }

  async function showFeature(map, feature, lngLat) {
    const layerId = feature.sourceLayer;
    const own = config.layers[layerId];
    let body;
    if (own && feature.id !== undefined && feature.id !== null) {
      const path = `/collections/${encodeURIComponent(layerId)}/items/${encodeURIComponent(feature.id)}`;
      const item = await getJSON(`${path}?f=json`);
      const properties = item.properties || {};
      const name = own.title_field ? properties[own.title_field] : null;
      body = popupBody(name ? `${own.title}: ${name}` : `${own.title} #${feature.id}`, properties, root + path);
      body.dataset.collection = layerId;
      body.dataset.feature = String(feature.id);
    } else {
      const meta = (map.getLayer(feature.layer.id) || {}).metadata || {};
      const title = (config.lang === "zh" ? meta["onemap:title_zh"] : meta["onemap:title"]) || text.hexagon;
      body = popupBody(title, feature.properties || {}, null);
    }
    new maplibregl.Popup({ maxWidth: "24rem" }).setLngLat(lngLat).setDOMContent(body).addTo(map);
    viewer.popups += 1;
  }

  function clickable(map) {
    return map.getStyle().layers
      .filter((l) => l.type !== "background" && l.type !== "symbol" && (l.layout || {}).visibility !== "none")
      .map((l) => l.id);
  }

  function featuresAt(map, point) {
    const box = [[point.x - 4, point.y - 4], [point.x + 4, point.y + 4]];
    const found = map.queryRenderedFeatures(box, { layers: clickable(map) });
    // a feature before the hexagons summarising it: hexagons lie underneath everything
    return found.filter((f) => !isHexagons(f.layer)).concat(found.filter((f) => isHexagons(f.layer)));
  }

  // -- start ------------------------------------------------------------------------------------------
  function hashPosition() {
    // MapLibre's own hash (#zoom/lat/lon): a shared link opens where it was, else the layer is fitted
    return /^#\d+(\.\d+)?\/-?\d/.test(location.hash);
  }

  async function start() {
    const [style, tilejson] = await Promise.all([getJSON(config.style), getJSON(config.tilejson)]);
    const options = {
      container: "map",
      style: withLabels(style),
      hash: true,
      attributionControl: false,
      localIdeographFontFamily: false, // every glyph from OneMap's own font: the same on every screen
      transformRequest: (url) => ({ url: withToken(url) }),
    };
    if (!hashPosition()) {
      options.bounds = tilejson.bounds;
      options.fitBoundsOptions = { padding: 40 };
    }
    const map = new maplibregl.Map(options);
    viewer.map = map;
    viewer.bounds = tilejson.bounds;
    map.addControl(new maplibregl.NavigationControl(), "bottom-right");
    map.addControl(new maplibregl.ScaleControl(), "bottom-left");
    map.on("load", () => renderPanel(map));
    map.on("click", (event) => {
      const found = featuresAt(map, event.point);
      if (!found.length) return;
      showFeature(map, found[0], event.lngLat).catch((err) => {
        showProblem(String(err));
        console.error("the feature could not be shown:", err);
      });
    });
    map.on("mousemove", (event) => {
      map.getCanvas().style.cursor = featuresAt(map, event.point).length ? "pointer" : "";
    });
    map.on("error", (event) => {
      showProblem(String((event.error && event.error.message) || event.error));
      console.error("map error:", event.error);
    });
    map.once("idle", () => { viewer.ready = true; });
  }

  function whenLoaded(run) {
    if (window.maplibregl) run();
    else window.addEventListener("load", run);
  }

  whenLoaded(() => start().catch((err) => {
    showProblem(String(err));
    console.error("the viewer could not start:", err);
  }));
})();
