"""An independent reading of the store, for tests to compare the APIs against.

It reads every row with one plain SELECT and evaluates questions in Python with shapely, so it
shares no query-building code with the Features provider or the tile engine.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import shapely
from sqlalchemy import text

from gis.security.encryption import encrypted_names
from gis.storage.store import Store


@dataclass
class Row:
    id: int
    props: dict
    geom: shapely.Geometry  # lon/lat, EPSG:4490


def read_layer(store: Store, layer_id: str) -> list[Row]:
    layer = store.catalog[layer_id]
    names = [a.name for a in layer.attributes]
    cols = ", ".join(f'"{n}"' for n in names)
    table = f'"{store.schema}"."{layer_id}"' if store.postgis else f'"{layer_id}"'
    with store.engine.connect() as conn:
        rows = conn.execute(text(f"SELECT id, {cols}, ST_AsBinary(geom) FROM {table} ORDER BY id")).all()
    # sealed columns opened in Python with the store's key: independent of the SQL decryption
    sealed = encrypted_names(layer)
    out = []
    for row in rows:
        props = {}
        for name, value in zip(names, row[1:-1]):
            if isinstance(value, (dt.datetime, dt.date)):
                value = value.isoformat()
            props[name] = store.key.open(value) if name in sealed else value
        out.append(Row(int(row[0]), props, shapely.from_wkb(bytes(row[-1]))))
    return out


def public_props(store: Store, layer_id: str, row: Row) -> dict:
    allowed = {a.name for a in store.catalog[layer_id].public_attributes}
    return {k: v for k, v in row.props.items() if k in allowed}


# layers/roles/roles.yml (and tests/roles/mechanics.yml): the anonymous caller sees these layers'
# statistics only, never their features
AGGREGATE_ONLY = frozenset({"population"})


def readable_layers(store: Store) -> list:
    """The layers whose features the anonymous caller of the protocol tests reads."""
    return [layer for layer in store.catalog.published if layer.id not in AGGREGATE_ONLY]
