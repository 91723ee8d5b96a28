"""Which source field (or formula) fills which attribute of the target layer.

A mapping comes from a small YAML file, the command line (`--set attr=expr`, `--source-id`),
or both (the command line wins). A mapping file is either one section or, like the shipped
data/osm-mapping.yml, a `layers:` dictionary of sections keyed by layer id:

    source_id: ID                     # expression giving each row's key in the source
    crs: EPSG:4549                    # when the file does not say (a CSV, a bare Shapefile)
    attributes:
      name: NAME                      # a field
      category: "'school'"            # a constant (quoted: unquoted words are field names)
      capacity: num(BEDS) or 0        # a formula (gis.imports.expressions)

Attributes the mapping does not mention take the source field of the same name, if there is
one (ignoring case).
"""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gis.catalog import Layer
from gis.imports.expressions import Expression, ExpressionError


class MappingError(ValueError):
    """The mapping cannot be used with this layer and source; the message says how to fix it."""


@dataclass
class Mapping:
    layer: Layer
    attributes: dict[str, Expression]
    source_id: Expression | None = None
    crs: str | None = None
    section: dict = field(default_factory=dict)  # the whole section (OSM selection rules live here)

    @classmethod
    def build(
        cls,
        layer: Layer,
        file: Path | None = None,
        assignments: tuple[str, ...] = (),
        source_id: str | None = None,
    ) -> "Mapping":
        section = _section(file, layer.id) if file else {}
        raw = dict(section.get("attributes") or {})
        for assignment in assignments:
            name, sep, expr = assignment.partition("=")
            if not sep or not name.strip():
                raise MappingError(f"--set {assignment!r}: write attribute=expression, e.g. --set category=\"'school'\"")
            raw[name.strip()] = expr
        known = {a.name for a in layer.attributes}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise MappingError(
                f"layer {layer.id} has no attribute {', '.join(unknown)}; its attributes: {', '.join(sorted(known))}"
            )
        try:
            attributes = {name: Expression.parse(expr) for name, expr in raw.items()}
            key = source_id if source_id is not None else section.get("source_id")
            key_expr = Expression.parse(key) if key is not None else None
        except ExpressionError as err:
            raise MappingError(str(err)) from None
        return cls(layer, attributes, key_expr, section.get("crs"), section)

    def complete(self, source_fields: list[str]) -> "Mapping":
        """Fill unmapped attributes from same-named fields and check every field read exists."""
        by_lower = {name.lower(): name for name in source_fields}
        attributes = dict(self.attributes)
        for attribute in self.layer.attributes:
            if attribute.name not in attributes and attribute.name.lower() in by_lower:
                attributes[attribute.name] = Expression.parse(f"field({by_lower[attribute.name.lower()]!r})")
        present = set(source_fields)
        for name, expression in attributes.items():
            if expression.kind == "field" and expression.value not in present:
                raise MappingError(
                    f"{name} = {expression.source}: the source has no field {expression.value!r}; "
                    f"its fields: {', '.join(source_fields) or '(none)'}; quote a constant like '{expression.value}'"
                )
        if self.source_id is not None and self.source_id.kind == "field" and self.source_id.value not in present:
            raise MappingError(
                f"--source-id {self.source_id.value}: the source has no such field; its fields: {', '.join(source_fields)}"
            )
        return Mapping(self.layer, attributes, self.source_id, self.crs, self.section)


def _section(file: Path, layer_id: str) -> dict:
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as err:
        raise MappingError(f"cannot read the mapping file {file}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise MappingError(f"{file} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(document, MappingABC):
        raise MappingError(f"{file}: a mapping file is a YAML dictionary (attributes:, source_id:, crs:)")
    if "layers" in document:
        layers = document["layers"] or {}
        if layer_id not in layers:
            raise MappingError(f"{file} maps no layer {layer_id!r}; it maps {', '.join(layers) or 'none'}")
        document = layers[layer_id] or {}
    extra = set(document) - {"attributes", "source_id", "crs", "select", "from", "layer"}
    if extra:
        raise MappingError(f"{file}: unknown keys {', '.join(sorted(extra))}; use attributes, source_id, crs")
    if document.get("layer") not in (None, layer_id):
        raise MappingError(f"{file} maps layer {document['layer']!r}, not {layer_id!r}")
    return dict(document)
