"""H3 heatmaps as vector tiles: what each shows (definition), the city's cells per resolution and
data version (cells, shared between a host's workers by shared), their tiles (render, mvt) and
their colour ramps in the styles (style)."""
