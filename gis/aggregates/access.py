"""Who may see individuals: the one place every aggregate output (collections, processes,
raster exports) asks before it suppresses small groups of people.

Until roles exist (the access issue), every caller is the public: aggregates only, small cells
withheld. The roles work replaces this function's body, and nothing else.
"""

from __future__ import annotations


def individual_access(request: object | None = None) -> bool:
    return False
