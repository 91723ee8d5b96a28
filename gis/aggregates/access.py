"""Who may see individuals: the one place every aggregate output of this package (aggregate
collections, the `aggregate` process, raster exports) asks before it suppresses small groups.

Until roles are wired in here, every caller is the public: aggregates only, small cells
withheld. With roles (gis.security) the body becomes the principal's own answer, e.g.
`current().individual_access(layer_id)`, and nothing else changes.
"""

from __future__ import annotations


def individual_access(layer_id: str) -> bool:
    return False
