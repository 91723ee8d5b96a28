"""Indicator aggregates as OGC API - Features collections (hexagons and grids, for QGIS)."""
