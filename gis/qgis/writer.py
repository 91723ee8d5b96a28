"""Run by Debian's python3 (QGIS's bindings live there): write a QGIS project from a OneMap plan.

usage: python3 writer.py OUT.qgz < plan.json
The plan (gis.qgis.plan) lists groups of layers: OGC API - Features layers with a symbol each,
and vector-tile layers that take their look from OneMap's MapLibre style (`styleUrl`). Prints one
JSON line: each layer's name and validity. Imports nothing from OneMap: it runs outside the venv.
"""

import json
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsCategorizedSymbolRenderer,
    QgsCoordinateReferenceSystem,
    QgsDataSourceUri,
    QgsFillSymbol,
    QgsLineSymbol,
    QgsMarkerSymbol,
    QgsProject,
    QgsRectangle,
    QgsReferencedRectangle,
    QgsRendererCategory,
    QgsSingleSymbolRenderer,
    QgsVectorLayer,
    QgsVectorTileLayer,
)


def make_symbol(spec, colour):
    kind = spec["kind"]
    if kind == "point":
        return QgsMarkerSymbol.createSimple(
            {"name": "circle", "color": colour, "size": str(spec["size"]), "outline_color": "255,255,255,200", "outline_width": "0.2"}
        )
    if kind in ("line", "outline"):
        if kind == "line":
            return QgsLineSymbol.createSimple({"color": colour, "width": str(spec["width"])})
        return QgsFillSymbol.createSimple(
            {"color": "0,0,0,0", "style": "no", "outline_color": colour, "outline_width": str(spec["width"])}
        )
    symbol = QgsFillSymbol.createSimple({"color": colour, "outline_color": "40,60,100,255", "outline_width": "0.1"})
    symbol.setOpacity(spec.get("opacity", 1))
    return symbol


def style_oapif(layer, spec):
    if spec.get("categories"):
        categories = [
            QgsRendererCategory(value, make_symbol(spec, colour), str(value)) for value, colour in spec["categories"]
        ]
        categories.append(QgsRendererCategory(None, make_symbol(spec, spec["colour"]), "other"))
        layer.setRenderer(QgsCategorizedSymbolRenderer(spec["attribute"], categories))
    else:
        layer.setRenderer(QgsSingleSymbolRenderer(make_symbol(spec, spec["colour"])))


def oapif_layer(base, entry):
    # the whole collection, paged through the server's next links: planners analyse all of it
    uri = f"url='{base}' typename='{entry['id']}' restrictToRequestBBOX='0'"
    layer = QgsVectorLayer(uri, entry["title"], "OAPIF")
    if layer.isValid():
        style_oapif(layer, entry["symbol"])
    return layer


def tile_layer(entry):
    uri = QgsDataSourceUri()
    uri.setParam("type", "xyz")
    uri.setParam("url", entry["tiles"])
    uri.setParam("zmin", str(entry["minzoom"]))
    uri.setParam("zmax", str(entry["maxzoom"]))
    uri.setParam("styleUrl", entry["style"])
    layer = QgsVectorTileLayer(bytes(uri.encodedUri()).decode(), entry["title"])
    if layer.isValid():
        layer.loadDefaultStyle()  # reads styleUrl: OneMap's MapLibre style, converted by QGIS
    return layer


def main():
    out = sys.argv[1]
    plan = json.load(sys.stdin)
    app = QgsApplication([], False)
    app.initQgis()
    project = QgsProject.instance()
    project.setTitle(plan["title"])
    project.setCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    root = project.layerTreeRoot()
    report = []
    for group_plan in plan["groups"]:
        if not group_plan["layers"]:
            continue
        group = root.addGroup(group_plan["name"])
        group.setItemVisibilityChecked(group_plan.get("visible", True))
        for entry in group_plan["layers"]:
            layer = oapif_layer(plan["base"], entry) if group_plan["kind"] == "oapif" else tile_layer(entry)
            report.append({"name": entry["title"], "group": group_plan["name"], "valid": layer.isValid()})
            if not layer.isValid():
                continue
            project.addMapLayer(layer, False)
            group.addLayer(layer)
    if plan.get("extent"):
        west, south, east, north = plan["extent"]
        view = project.viewSettings()
        view.setDefaultViewExtent(
            QgsReferencedRectangle(QgsRectangle(west, south, east, north), QgsCoordinateReferenceSystem("EPSG:4326"))
        )
    written = project.write(out)
    print(json.dumps({"written": bool(written), "layers": report}), flush=True)
    # QGIS 3.22 crashes in exitQgis() when run headless; the report is out, so leave directly
    os._exit(0 if written and all(r["valid"] for r in report) else 1)


if __name__ == "__main__":
    main()
