"""Run by Debian's python3 (QGIS's bindings live there): open OneMap's collections as QGIS does.

usage: python3 qgis_oapif.py BASE_URL COLLECTION [COLLECTION ...]
Prints one JSON object: per collection, whether the layer is valid, how many features QGIS read
by iterating (QGIS pages through rel=next links), the feature count QGIS reports, its CRS, and
the extent it computed.
"""

import json
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import QgsApplication, QgsVectorLayer  # noqa: E402


def main() -> None:
    base, collections = sys.argv[1], sys.argv[2:]
    app = QgsApplication([], False)
    app.initQgis()
    report = {}
    for name in collections:
        layer = QgsVectorLayer(f"url='{base}' typename='{name}' restrictToRequestBBOX='0'", name, "OAPIF")
        entry = {"valid": layer.isValid()}
        if layer.isValid():
            ids = [f.attribute("id") if layer.fields().indexOf("id") >= 0 else f.id() for f in layer.getFeatures()]
            entry.update(
                read=len(ids),
                distinct=len(set(ids)),
                feature_count=layer.featureCount(),
                crs=layer.crs().authid(),
                fields=[f.name() for f in layer.fields()],
                extent=[layer.extent().xMinimum(), layer.extent().yMinimum(), layer.extent().xMaximum(), layer.extent().yMaximum()],
            )
        else:
            entry["error"] = layer.error().summary()
        report[name] = entry
    print(json.dumps(report), flush=True)
    # QGIS 3.22 crashes in exitQgis() when run headless; the report is out, so leave directly
    os._exit(0)


if __name__ == "__main__":
    main()
