"""Rasters in and out of the city store: population grids in, indicator aggregates out as COGs."""
