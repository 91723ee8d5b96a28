"""Run by Debian's python3 (QGIS's bindings live there): write a QGIS project from a OneMap plan.

usage: python3 writer.py OUT.qgz [AUTH.xml] < plan.json
The plan (gis.qgis.plan) lists groups of layers: OGC API - Features layers with a symbol each,
and vector-tile layers that take their look from OneMap's MapLibre style (`styleUrl`). Prints one
JSON line: each layer's name and validity. Imports nothing from OneMap: it runs outside the venv.

A plan with `auth` (a role's token) reaches the server as that role. QGIS 3.22 attaches
credentials only through an authentication configuration (its OAPIF provider reads `authcfg`,
`username`/`password`, nothing else: no `http-header:` keys, and `referer` is not sent), and its
only header-carrying methods are Basic and EsriToken; so the writer makes a Basic configuration
(the token as password, which OneMap accepts) in a throw-away auth database, points every layer's
`authcfg` at it and exports it to AUTH.xml, which the planner imports once (Settings > Options >
Authentication > Utilities > Import). The project file itself holds only the configuration's id.
"""

import json
import os
import secrets
import sys
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# the token goes into a throw-away auth database, never the user's own qgis-auth.db
os.environ["QGIS_AUTH_DB_DIR_PATH"] = tempfile.mkdtemp(prefix="onemap-qgis-auth-")

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsAuthMethodConfig,
    QgsBlockingNetworkRequest,
    QgsCategorizedSymbolRenderer,
    QgsCoordinateReferenceSystem,
    QgsDataSourceUri,
    QgsFillSymbol,
    QgsLineSymbol,
    QgsMapBoxGlStyleConversionContext,
    QgsMapBoxGlStyleConverter,
    QgsMarkerSymbol,
    QgsProject,
    QgsRectangle,
    QgsReferencedRectangle,
    QgsRendererCategory,
    QgsSingleSymbolRenderer,
    QgsVectorLayer,
    QgsVectorTileLayer,
)
from qgis.PyQt.QtCore import QUrl  # noqa: E402
from qgis.PyQt.QtNetwork import QNetworkRequest  # noqa: E402


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


def oapif_layer(base, entry, authcfg):
    # the whole collection, paged through the server's next links: planners analyse all of it
    uri = f"url='{base}' typename='{entry['id']}' restrictToRequestBBOX='0'"
    if authcfg:
        uri += f" authcfg='{authcfg}'"
    layer = QgsVectorLayer(uri, entry["title"], "OAPIF")
    if layer.isValid():
        style_oapif(layer, entry["symbol"])
    return layer


def tile_layer(entry, authcfg):
    uri = QgsDataSourceUri()
    uri.setParam("type", "xyz")
    uri.setParam("url", entry["tiles"])
    uri.setParam("zmin", str(entry["minzoom"]))
    uri.setParam("zmax", str(entry["maxzoom"]))
    uri.setParam("styleUrl", entry["style"])
    if authcfg:
        uri.setParam("authcfg", authcfg)
    layer = QgsVectorTileLayer(bytes(uri.encodedUri()).decode(), entry["title"])
    if not layer.isValid():
        return layer
    if not authcfg:
        layer.loadDefaultStyle()  # reads styleUrl: OneMap's MapLibre style, converted by QGIS
        return layer
    # 3.22's loadDefaultStyle fetches styleUrl without the layer's authcfg (the public's style,
    # without the role's layers): fetch it with the credentials and convert it the same way
    request = QgsBlockingNetworkRequest()
    request.setAuthCfg(authcfg)
    if request.get(QNetworkRequest(QUrl(entry["style"]))) == QgsBlockingNetworkRequest.NoError:
        converter = QgsMapBoxGlStyleConverter()
        style = json.loads(bytes(request.reply().content()).decode("utf-8"))
        if converter.convert(style, QgsMapBoxGlStyleConversionContext()) == QgsMapBoxGlStyleConverter.Success:
            layer.setRenderer(converter.renderer())
            layer.setLabeling(converter.labeling())
    return layer


def auth_config(auth, out):
    """A Basic configuration carrying the token, exported to `out` for the planner to import."""
    manager = QgsApplication.authManager()
    manager.setMasterPassword(secrets.token_hex(16), True)
    config = QgsAuthMethodConfig("Basic")
    config.setName(auth["name"])
    config.setConfig("username", auth["user"])
    config.setConfig("password", auth["token"])
    stored, config = manager.storeAuthenticationConfig(config)
    if not stored:
        raise RuntimeError("QGIS could not store the authentication configuration")
    # the token is a secret: the file is the planner's alone
    with open(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w"):
        pass
    if not manager.exportAuthenticationConfigsToXml(out, [config.id()], ""):
        raise RuntimeError(f"QGIS could not export the authentication configuration to {out}")
    os.chmod(out, 0o600)
    return config.id()


def main():
    out = sys.argv[1]
    plan = json.load(sys.stdin)
    app = QgsApplication([], False)
    app.initQgis()
    authcfg = auth_config(plan["auth"], sys.argv[2]) if plan.get("auth") else None
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
            layer = oapif_layer(plan["base"], entry, authcfg) if group_plan["kind"] == "oapif" else tile_layer(entry, authcfg)
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
    print(json.dumps({"written": bool(written), "layers": report, "authcfg": authcfg}), flush=True)
    # QGIS 3.22 crashes in exitQgis() when run headless; the report is out, so leave directly
    os._exit(0 if written and all(r["valid"] for r in report) else 1)


if __name__ == "__main__":
    main()
