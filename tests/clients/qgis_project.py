"""Run by Debian's python3: open a QGIS project headless, as a planner's QGIS would, and report.

usage: python3 qgis_project.py PROJECT.qgz OUT.png [AUTH.xml]
AUTH.xml (what `onemap qgis-project --token` writes) is imported first, into a fresh auth database,
as a planner imports it once into their QGIS.
Prints one JSON object: the layer tree (group, name, provider, valid, feature count for vector
layers), and how much of a 1200x900 rendering of the whole project differs from the background.
"""

import json
import os
import sys
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["QGIS_AUTH_DB_DIR_PATH"] = tempfile.mkdtemp(prefix="qgis-auth-")

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsProject,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize  # noqa: E402
from qgis.PyQt.QtGui import QColor  # noqa: E402


def main() -> None:
    path, png = sys.argv[1], sys.argv[2]
    app = QgsApplication([], False)
    app.initQgis()
    if len(sys.argv) > 3:
        manager = QgsApplication.authManager()
        manager.setMasterPassword("planner", True)
        assert manager.importAuthenticationConfigsFromXml(sys.argv[3], "", True), "the auth file did not import"
    project = QgsProject.instance()
    report = {"read": project.read(path), "title": project.title(), "layers": []}
    for node in project.layerTreeRoot().findLayers():
        layer = node.layer()
        entry = {
            "group": node.parent().name(),
            "name": node.name(),
            "provider": layer.providerType() if layer else None,
            "valid": bool(layer and layer.isValid()),
        }
        if isinstance(layer, QgsVectorLayer) and layer.isValid():
            entry["feature_count"] = layer.featureCount()
            entry["typename"] = layer.source().split("typename='")[1].split("'")[0]
            entry["renderer"] = layer.renderer().type()
        report["layers"].append(entry)

    # a city-wide picture: every visible layer, in the project's CRS, over its default view
    settings = QgsMapSettings()
    settings.setOutputSize(QSize(1200, 900))
    settings.setBackgroundColor(QColor(255, 255, 255))
    settings.setDestinationCrs(project.crs())
    visible = [n.layer() for n in project.layerTreeRoot().findLayers() if n.isVisible() and n.layer() and n.layer().isValid()]
    settings.setLayers(visible)
    view = project.viewSettings().defaultViewExtent()
    extent = QgsCoordinateTransform(view.crs(), project.crs(), project).transformBoundingBox(view)
    settings.setExtent(extent)
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    image.save(png)
    step, differing, total = 4, 0, 0
    for y in range(0, image.height(), step):
        for x in range(0, image.width(), step):
            total += 1
            if image.pixelColor(x, y).rgb() != QColor(255, 255, 255).rgb():
                differing += 1
    report["render"] = {"png": png, "differing": differing / total, "errors": [e.message for e in job.errors()]}
    report["crs"] = project.crs().authid()
    print(json.dumps(report), flush=True)
    # QGIS 3.22 crashes in exitQgis() when run headless; the report is out, so leave directly
    os._exit(0)


if __name__ == "__main__":
    main()
