"""The page: landing and room HTML from jinja2 templates, the static ES modules, and the ICE servers.

The HTML never carries executable inline script (the Content-Security-Policy allows only ``'self'``
scripts): whatever the JavaScript needs from the server travels in a ``<script type="application/json">``
block, which browsers do not execute, or as JSON it fetches (``/ice-servers``, fresh for every connection).
"""

from __future__ import annotations

from typing import Any

import jinja2
import orjson
from aiohttp import web

from ghosttalk.contract import MAX_NAME_CHARS, is_room_id
from ghosttalk.ops.turn import ice_servers
from ghosttalk.server.lifecycle import CONFIG
from ghosttalk.version import commit, version
from ghosttalk.webfiles import STATIC_DIR, TEMPLATE_DIR

JINJA = web.AppKey("pages_jinja", jinja2.Environment)


def _render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    page = {"version": version(), "commit": commit(), **context}
    html = request.app[JINJA].get_template(template).render(page=page, **page)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


async def landing(request: web.Request) -> web.Response:
    return _render(request, "index.html", view="landing")


async def room_page(request: web.Request) -> web.Response:
    room = request.match_info["room"]
    # The contract's rule, the one /ws applies to ?room=: every room page can be joined.
    if not is_room_id(room):
        return _render(request, "error.html", status=400, view="error", room=room[:80])
    return _render(request, "room.html", view="room", room=room, name_max_chars=MAX_NAME_CHARS)


async def ice_servers_json(request: web.Request) -> web.Response:
    # TURN REST credentials are minted per request and expire: neither the browser nor a proxy may keep them.
    return web.Response(
        body=orjson.dumps(ice_servers(request.app[CONFIG])),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def _revalidate_static(request: web.Request, response: web.StreamResponse) -> None:
    # Module URLs carry no version, so browsers must revalidate (cheap 304s via ETag) to pick up a deploy.
    if request.path.startswith("/static/") and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-cache"


def setup_pages(app: web.Application) -> None:
    app[JINJA] = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    app.router.add_get("/", landing, name="landing")
    # ".*" so that an empty id or one with slashes gets the friendly error page rather than a bare 404.
    app.router.add_get("/r/{room:.*}", room_page, name="room")
    app.router.add_get("/ice-servers", ice_servers_json, name="ice_servers")
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=False)
    app.on_response_prepare.append(_revalidate_static)
