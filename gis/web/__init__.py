"""Pages for people: the front page at `/` (HTML) and the map viewers (`/viewer`, `/collections/{id}/viewer`).

Machines keep pygeoapi's JSON landing page; a browser asking for HTML gets OneMap's own page, which
shows what the caller's role holds and where everything is (gis.web.routes).
"""
