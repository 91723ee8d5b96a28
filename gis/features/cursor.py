"""Keyset paging behind ordinary `offset` links.

Next links carry `after=<id of the page's last feature>` beside `offset`: the server then reads
`WHERE id > after ORDER BY id LIMIT n` (an index range scan at any depth) instead of skipping
`offset` rows. `offset` stays, so clients that build their own URLs still work, only slower. The
dispatcher reads `after` from the request and hands it to the provider through this context
variable, because pygeoapi passes providers no parameters it does not know.
"""

from __future__ import annotations

from contextvars import ContextVar

after_id: ContextVar[int | None] = ContextVar("onemap_after_id", default=None)
