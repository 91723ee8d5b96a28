"""OGC API - Processes: the `aggregate` process over the indicator registry and the layers."""
