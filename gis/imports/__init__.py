"""Imports: `onemap load` brings departmental files and OpenStreetMap extracts into layers.

readers/osm read a file into columns, mapping/expressions turn fields into attributes,
validate checks every row before anything is written, write upserts in one transaction, job
ties them together, cli is the command.
"""
