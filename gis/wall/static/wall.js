/* OneMap wall: the city on one screen, built from the service's own style, TileJSON and /stats.
 *
 * The view (layers, heatmap, camera, theme, refresh, kiosk, language, token) comes from the page's
 * config, which the server parsed from the URL. Every request the page makes carries the URL's
 * token. Refresh never reloads the page: it swaps tile URL versions (setTiles) when the data
 * changed, and rewrites KPI text in place, so nothing on screen blinks.
 */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("wall-config").textContent);
  const view = config.view;
  // the server never sees ?token= (authentication takes it off before routing): read it here
  view.token = new URLSearchParams(location.search).get("token") || null;
  const root = config.root || "";
  const FONT = [config.font];
  const THEMES = {
    dark: { background: "#050d1a", label: "#e6f0ff", halo: "#050d1a", extrusion: 0.85 },
    light: { background: "#eef2f7", label: "#13233a", halo: "#ffffff", extrusion: 0.7 },
  };
  const theme = THEMES[view.theme] || THEMES.dark;
  const TEXT = {
    zh: {
      title: "城市运行一张图", kpis: "核心指标", legend: "图例", embed: "嵌入", switch: "English",
      updated: "更新于", suppressed: "（已保护）", heatmap: "热力图", low: "低", high: "高",
    },
    en: {
      title: "OneMap city wall", kpis: "Key figures", legend: "Legend", embed: "Embed", switch: "中文",
      updated: "Updated", suppressed: " (withheld)", heatmap: "Heatmap", low: "low", high: "high",
    },
  };
  const VALUES_ZH = {
    online: "在线", offline: "离线", school: "学校", kindergarten: "幼儿园", hospital: "医院", clinic: "诊所",
    gas_station: "加油站", hazardous_chemicals: "危化品", market: "市场", shopping_mall: "商场",
    nursing_home: "养老院", government: "政府机关", transport_hub: "交通枢纽", stadium: "体育场馆",
    normal: "正常", damaged: "损坏", missing: "缺失", under_repair: "维修中",
  };
  const UNITS_ZH = {
    person: "人", building: "栋", m2: "平方米", camera: "个", place: "处", component: "个",
  };

  // A frame's cost grows with the canvas' pixels, whatever is drawn: with software WebGL (wall PCs
  // without a GPU) a 3840x2160 canvas takes seconds per frame even empty (bench/README.md, "Wall
  // display"). The map is therefore drawn into at most a 1920x1080 buffer that the browser scales
  // up, as video controllers scale 1080p sources; KPIs, legend and title stay at the screen's own
  // resolution, and MapLibre keeps line widths and label sizes in CSS pixels.
  const MAX_MAP_PIXELS = 1920 * 1080;
  function pixelRatio(container) {
    const native = window.devicePixelRatio || 1;
    const area = Math.max(1, container.clientWidth * container.clientHeight);
    return Math.min(native, Math.sqrt(MAX_MAP_PIXELS / area));
  }

  const state = { lang: view.lang, indicators: [], allIndicators: new Map(), kpiValues: {}, sources: {}, map: null, style: null };
  const wall = (window.onemapWall = { config, state, ready: false, refreshes: 0 });

  // -- requests: same-origin ones carry the wall token --------------------------------------------
  const origins = new Set([location.origin]);
  function withToken(url) {
    const u = new URL(url, location.href);
    if (!view.token || !origins.has(u.origin)) return u.toString();
    u.searchParams.set("token", view.token);
    return u.toString();
  }
  async function getJSON(path) {
    const response = await fetch(withToken(root + path), { cache: "no-store" });
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }
  function showProblem(message) {
    const box = document.getElementById("problem");
    box.textContent = message;
    box.hidden = false;
  }

  // -- the style: the server's own, themed, with labels and the chosen heatmap ----------------------
  function tileSource(tilejson) {
    try {
      origins.add(new URL(tilejson.tiles[0]).origin);
    } catch (e) { /* relative template: same origin */ }
    return {
      type: "vector", tiles: tilejson.tiles, minzoom: tilejson.minzoom, maxzoom: tilejson.maxzoom,
      bounds: tilejson.bounds,
    };
  }

  function layerOf(styleLayer) {
    const meta = styleLayer.metadata || {};
    const sourceLayer = styleLayer["source-layer"] || styleLayer.id;
    // a layer's hexagons below its own zoom (tiles/heatmap.py) belong to it: shown and hidden with it
    const indicator = sourceLayer.startsWith("h3_") ? state.allIndicators.get(sourceLayer.slice(3)) : null;
    return meta["onemap:layer"] || (indicator ? indicator.layer : sourceLayer);
  }

  function labelLayers(shown) {
    const paint = { "text-color": theme.label, "text-halo-color": theme.halo, "text-halo-width": 1.6 };
    const labels = [];
    const add = (layer, id, minzoom, maxzoom, size, extra) => {
      if (!shown.has(layer)) return;
      labels.push({
        id: `label:${id}`, type: "symbol", source: "onemap", "source-layer": layer, minzoom, maxzoom,
        metadata: { "onemap:layer": layer, "onemap:label": true },
        layout: Object.assign({ "text-field": ["get", "name"], "text-font": FONT, "text-size": size }, extra || {}),
        paint,
      });
    };
    add("districts", "districts", 8, 12, 26, { "text-letter-spacing": 0.2 });
    add("streets", "streets", 11, 15, 17);
    add("key_places", "key_places", 15, 23, 13, { "text-offset": [0, 1.1], "text-anchor": "top", "text-optional": true });
    return labels;
  }

  async function buildStyle() {
    const [base, tilejson] = await Promise.all([
      getJSON("/styles/onemap/style.json"), getJSON("/tiles/WebMercatorQuad/tilejson.json"),
    ]);
    const shown = new Set(view.layers);
    const style = {
      version: 8, name: base.name, glyphs: base.glyphs, sources: { onemap: tileSource(tilejson) }, layers: [],
    };
    state.sources.onemap = { tilejson: "/tiles/WebMercatorQuad/tilejson.json", tiles: tilejson.tiles };
    for (const layer of base.layers) {
      if (layer.type === "background") {
        style.layers.push({ id: "background", type: "background", paint: { "background-color": theme.background } });
        continue;
      }
      const copy = JSON.parse(JSON.stringify(layer));
      copy.layout = Object.assign({}, copy.layout, { visibility: shown.has(layerOf(layer)) ? "visible" : "none" });
      if (copy.type === "fill-extrusion") copy.paint["fill-extrusion-opacity"] = theme.extrusion;
      style.layers.push(copy);
    }
    if (view.heatmap) await addHeatmap(style, view.heatmap);
    style.layers.push(...labelLayers(shown));
    return { style, tilejson };
  }

  async function addHeatmap(style, id) {
    // any tileset's own style plugs in: its sources resolved to tile URLs, its layers under the lines
    const heat = await getJSON(`/collections/${encodeURIComponent(id)}/styles/default/style.json`);
    const renamed = {};
    for (const [name, source] of Object.entries(heat.sources)) {
      const key = `heat:${name}`;
      renamed[name] = key;
      if (source.url) {
        const path = new URL(source.url, location.href).pathname.slice(root.length);
        const tilejson = await getJSON(path);
        style.sources[key] = tileSource(tilejson);
        state.sources[key] = { tilejson: path, tiles: tilejson.tiles };
      } else {
        style.sources[key] = source;
      }
    }
    // on the ground, under everything else: extrusions and points stay readable above the hexagons
    const firstLine = style.layers.findIndex((l) => l.type !== "background");
    const layers = heat.layers.filter((l) => l.type !== "background").map((l) => Object.assign({}, l, {
      id: `heat:${l.id}`, source: renamed[l.source],
      metadata: Object.assign({}, l.metadata, { "onemap:heatmap": id }),
    }));
    style.layers.splice(firstLine < 0 ? style.layers.length : firstLine, 0, ...layers);
  }

  // -- KPIs: /stats totals, the same numbers the API gives ------------------------------------------
  function formatNumber(value) {
    if (value === null || value === undefined) return "—";
    const digits = Math.abs(value) >= 100 ? 0 : 1;
    return Number(value).toLocaleString(state.lang === "zh" ? "zh-CN" : "en-US", { maximumFractionDigits: digits });
  }

  function unitText(unit) {
    return state.lang === "zh" ? (UNITS_ZH[unit] || unit) : unit;
  }

  async function loadIndicators() {
    const listing = await getJSON("/stats/indicators");
    const available = new Map(listing.indicators.map((i) => [i.id, i]));
    state.allIndicators = available;
    const wanted = view.kpis || listing.indicators.map((i) => i.id);
    state.indicators = wanted.filter((id) => available.has(id)).map((id) => available.get(id));
  }

  async function refreshKpis() {
    const answers = await Promise.all(state.indicators.map((i) => getJSON(`/stats?indicator=${encodeURIComponent(i.id)}`)));
    answers.forEach((answer, n) => { state.kpiValues[state.indicators[n].id] = answer.total; });
    renderKpis();
  }

  function renderKpis() {
    const list = document.getElementById("kpi-list");
    for (const indicator of state.indicators) {
      let item = list.querySelector(`li[data-indicator="${indicator.id}"]`);
      if (!item) {
        item = document.createElement("li");
        item.dataset.indicator = indicator.id;
        item.innerHTML = '<span class="kpi-name"></span><span><span class="kpi-value"></span><span class="kpi-unit"></span></span>';
        list.appendChild(item);
      }
      const value = state.kpiValues[indicator.id];
      const shown = formatNumber(value);
      setText(item.querySelector(".kpi-name"), state.lang === "zh" ? indicator.name_zh : indicator.name);
      setText(item.querySelector(".kpi-value"), shown);
      setText(item.querySelector(".kpi-unit"), value === null ? TEXT[state.lang].suppressed : unitText(indicator.unit));
      item.dataset.value = value === null || value === undefined ? "" : String(value);
    }
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text; // untouched text is never repainted
  }

  // -- legend: read from the style actually drawn ---------------------------------------------------
  function colourOf(layer) {
    const paint = layer.paint || {};
    return paint["fill-extrusion-color"] || paint["fill-color"] || paint["line-color"] || paint["circle-color"];
  }

  function renderLegend() {
    const list = document.getElementById("legend-list");
    list.textContent = "";
    const t = TEXT[state.lang];
    for (const layer of state.style.layers) {
      const meta = layer.metadata || {};
      if (layer.type === "background" || layer.type === "symbol" || (layer.layout || {}).visibility === "none") continue;
      if (!meta["onemap:heatmap"] && (layer["source-layer"] || "").startsWith("h3_")) continue; // hexagons under a layer: its own entry says it
      const title = state.lang === "zh" ? (meta["onemap:title_zh"] || meta["onemap:title"]) : meta["onemap:title"];
      const colour = colourOf(layer);
      if (meta["onemap:heatmap"] || (Array.isArray(colour) && colour[0] !== "match")) {
        const stops = rampStops(colour);
        list.appendChild(legendItem(`${t.heatmap}: ${title || meta["onemap:heatmap"]}`, "ramp", stops));
        continue;
      }
      if (Array.isArray(colour) && colour[0] === "match") {
        list.appendChild(legendItem(title || layer.id, layer.type, colour[colour.length - 1]));
        for (let i = 2; i < colour.length - 1; i += 2) {
          const value = String(colour[i]);
          list.appendChild(legendItem(state.lang === "zh" ? (VALUES_ZH[value] || value) : value, layer.type, colour[i + 1], true));
        }
      } else {
        list.appendChild(legendItem(title || layer.id, layer.type, typeof colour === "string" ? colour : "#888"));
      }
    }
  }

  function rampStops(expression) {
    // the colours of the first ramp found, however deeply nested (step by zoom of interpolations)
    if (!Array.isArray(expression)) return [typeof expression === "string" ? expression : "#888"];
    const colours = expression.filter((x) => typeof x === "string" && /^(#|rgb|hsl)/.test(x));
    if (colours.length > 1) return colours;
    for (const part of expression) {
      if (Array.isArray(part)) {
        const inner = rampStops(part);
        if (inner.length > 1) return inner;
      }
    }
    return colours.length ? colours : ["#888"];
  }

  function legendItem(label, kind, colour, sub) {
    const item = document.createElement("li");
    if (sub) item.className = "sub";
    const swatch = document.createElement("span");
    const shape = kind === "circle" ? "circle" : kind === "line" ? "line" : kind === "ramp" ? "ramp" : "fill";
    swatch.className = `swatch ${shape}`;
    swatch.style.background = Array.isArray(colour)
      ? `linear-gradient(to right, ${colour.join(", ")})`
      : colour;
    const text = document.createElement("span");
    text.textContent = label;
    item.append(swatch, text);
    return item;
  }

  // -- language, clock, URL -------------------------------------------------------------------------
  function applyLanguage() {
    const t = TEXT[state.lang];
    document.documentElement.lang = state.lang;
    document.title = t.title;
    for (const node of document.querySelectorAll("[data-i18n]")) setText(node, t[node.dataset.i18n]);
    setText(document.getElementById("lang-switch"), t.switch);
    if (state.style) renderLegend();
    renderKpis();
    tick();
  }

  function tick() {
    const now = new Date();
    setText(document.getElementById("clock"), now.toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB", { hour12: false }));
  }

  function currentQuery(withTokenToo) {
    const params = new URLSearchParams(location.search);
    const map = state.map;
    if (map) {
      const c = map.getCenter();
      params.set("center", `${c.lng.toFixed(6)},${c.lat.toFixed(6)}`);
      params.set("zoom", map.getZoom().toFixed(2));
      params.set("bearing", map.getBearing().toFixed(1));
      params.set("pitch", map.getPitch().toFixed(1));
    }
    params.set("layers", view.layers.join(","));
    if (state.lang !== "zh") params.set("lang", state.lang); else params.delete("lang");
    if (!withTokenToo) params.delete("token");
    return params.toString().replace(/%2C/g, ",");
  }

  function syncUrl() {
    const query = currentQuery(true);
    history.replaceState(null, "", `${location.pathname}?${query}`);
    document.getElementById("embed-link").href = `${root}/wall/embed?${query}`;
  }

  // -- refresh: new data versions swap tile URLs; KPIs rewrite their text -----------------------------
  async function refresh() {
    try {
      for (const [id, source] of Object.entries(state.sources)) {
        const tilejson = await getJSON(source.tilejson);
        if (JSON.stringify(tilejson.tiles) !== JSON.stringify(source.tiles)) {
          source.tiles = tilejson.tiles;
          state.map.getSource(id).setTiles(tilejson.tiles);
        }
      }
      await refreshKpis();
      wall.refreshes += 1;
      setText(document.getElementById("updated"), `${TEXT[state.lang].updated} ${new Date().toLocaleTimeString(state.lang === "zh" ? "zh-CN" : "en-GB", { hour12: false })}`);
    } catch (err) {
      showProblem(String(err));
      console.warn("wall refresh failed; the next round retries", err);
    }
  }
  wall.refresh = refresh;

  // -- start ----------------------------------------------------------------------------------------
  async function start() {
    applyLanguage();
    document.getElementById("lang-switch").addEventListener("click", () => {
      state.lang = state.lang === "zh" ? "en" : "zh";
      applyLanguage();
      syncUrl();
    });
    await loadIndicators();
    const { style, tilejson } = await buildStyle();
    state.style = style;
    const options = {
      container: "map", style, attributionControl: false, maxPitch: 85,
      bearing: view.bearing, pitch: view.pitch,
      localIdeographFontFamily: false, // every glyph from OneMap's own font: the same on every screen
      pixelRatio: pixelRatio(document.getElementById("map")),
      transformRequest: (url) => ({ url: withToken(url) }),
    };
    if (view.center || view.zoom !== null) {
      options.center = view.center || tilejson.center.slice(0, 2);
      options.zoom = view.zoom !== null ? view.zoom : tilejson.center[2];
    } else {
      options.bounds = tilejson.bounds;
      options.fitBoundsOptions = { padding: 40 };
    }
    const map = new maplibregl.Map(options);
    state.map = wall.map = map;
    if (!view.kiosk) map.addControl(new maplibregl.NavigationControl({ visualizePitch: true }), "bottom-right");
    map.on("moveend", syncUrl);
    map.on("resize", () => {
      const ratio = pixelRatio(map.getContainer());
      if (Math.abs(ratio - map.getPixelRatio()) > 1e-3) map.setPixelRatio(ratio);
    });
    renderLegend();
    await refreshKpis();
    syncUrl();
    setInterval(tick, 1000);
    if (view.refresh > 0) setInterval(refresh, view.refresh * 1000);
    map.once("idle", () => { wall.ready = true; });
  }

  start().catch((err) => {
    showProblem(String(err));
    console.error("the wall could not start:", err);
  });
})();
