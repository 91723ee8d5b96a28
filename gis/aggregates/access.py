"""Who may see individuals: the one place every aggregate output of this package (aggregate
collections, the `aggregate` process, raster exports) asks before it suppresses small groups.

The caller's own answer (gis.security): roles that may read a layer's features (masked or full)
see its aggregates without suppression; everyone else, and any code running without a request
(the CLI), is the configured public: aggregates only, small cells withheld.
"""

from __future__ import annotations

from gis.security.principal import current


def individual_access(layer_id: str) -> bool:
    return current().individual_access(layer_id)
