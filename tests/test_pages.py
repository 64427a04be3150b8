"""The page routes over HTTP, without a browser: templates, the ICE-server module, static files, and the
rules the markup and scripts keep (no inline script or style, every visible string translated)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ghosttalk.config import Config
from ghosttalk.contract import is_room_id
from ghosttalk.server.lifecycle import CONFIG
from ghosttalk.server.pages import STATIC_DIR, TEMPLATE_DIR, setup_pages
from ghosttalk.version import commit, version

CONTRACT_IDS = ("nickname", "btn-join", "room-view", "btn-mute", "btn-leave", "btn-copy", "btn-mixer")
PAGE_TEMPLATES = ("index.html", "room.html", "error.html")
JS_DIR = STATIC_DIR / "js"
PAGE_SCRIPTS = sorted(JS_DIR.glob("*.js"))


async def make_client(config: Config) -> TestClient[web.Request, web.Application]:
    app = web.Application()
    app[CONFIG] = config
    setup_pages(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    client = await make_client(Config())
    yield client
    await client.close()


class Markup(HTMLParser):
    """Collects the elements of a page: (tag, attributes) in document order, and script bodies."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._script: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag == "script":
            self._script = dict(attrs)
            self.scripts.append((self._script, ""))

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            attrs, body = self.scripts[-1]
            self.scripts[-1] = (attrs, body + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None

    def by_id(self, element_id: str) -> dict[str, str | None]:
        for _, attrs in self.elements:
            if attrs.get("id") == element_id:
                return attrs
        raise AssertionError(f"#{element_id} missing")

    def page_data(self) -> dict[str, Any]:
        for attrs, body in self.scripts:
            if attrs.get("id") == "page-data":
                data: dict[str, Any] = json.loads(body)
                return data
        raise AssertionError("no page-data block")


def parse(html: str) -> Markup:
    markup = Markup()
    markup.feed(html)
    return markup


async def test_landing_page(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
    html = await response.text()
    markup = parse(html)
    assert markup.page_data() == {"view": "landing", "version": version(), "commit": commit()}
    markup.by_id("btn-create")
    markup.by_id("room-link")
    assert f">{version()}<" in html and f">{commit()}<" in html


async def test_room_page_keeps_the_test_contract(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get("/r/Team_room-42")
    assert response.status == 200
    markup = parse(await response.text())
    assert markup.page_data()["room"] == "Team_room-42"
    assert markup.page_data()["view"] == "room"
    for element_id in CONTRACT_IDS:
        markup.by_id(element_id)
    assert "hidden" in (markup.by_id("room-view").get("class") or "").split()
    assert markup.by_id("nickname").get("maxlength") == "12"


@pytest.mark.parametrize(
    "path",
    [
        "/r/" + "a" * 65,
        "/r/bad%20room",
        "/r/",
        "/r/a/b",
        "/r/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "/r/caf%C3%A9",
        "/r/room.name",
    ],
)
async def test_invalid_room_gets_a_clear_page(
    client: TestClient[web.Request, web.Application], path: str
) -> None:
    response = await client.get(path)
    assert response.status == 400
    assert response.content_type == "text/html"
    html = await response.text()
    markup = parse(html)
    assert markup.by_id("error-title")
    assert "1 to 64 characters" in html
    # What was asked for is shown escaped, never as markup.
    assert "<script>alert" not in html
    assert all(attrs.get("src") or attrs.get("type") == "application/json" for attrs, _ in markup.scripts)


@pytest.mark.parametrize("room", ["a", "A" * 64, "x-y_z", "0123456789", "Zq3-_"])
async def test_valid_room_ids(client: TestClient[web.Request, web.Application], room: str) -> None:
    assert is_room_id(room)
    assert (await client.get(f"/r/{room}")).status == 200


async def test_no_ice_servers_unless_configured(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get("/ice-servers")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    # No STUN server unless the operator configures one: the page contacts no third party.
    assert await response.json() == []
    # The module the page once imported for them is gone.
    assert (await client.get("/static/js/config.js")).status == 404


async def ice_servers_of(client: TestClient[web.Request, web.Application]) -> list[dict[str, Any]]:
    response = await client.get("/ice-servers")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    servers: list[dict[str, Any]] = await response.json()
    return servers


async def test_ice_servers_hand_out_fresh_turn_credentials() -> None:
    config = Config(
        stun_servers=("stun:stun.example.test:3478",),
        turn_servers=("turn:turn.example.test:3478?transport=udp", "turns:turn.example.test:5349"),
        turn_secret="s3cret",
        turn_ttl=600,
    )
    client = await make_client(config)
    try:
        first = await ice_servers_of(client)
        second = await ice_servers_of(client)
    finally:
        await client.close()
    assert first[0] == {"urls": ["stun:stun.example.test:3478"]}
    turn = first[1]
    assert turn["urls"] == list(config.turn_servers)
    expected = base64.b64encode(
        hmac.new(b"s3cret", turn["username"].encode(), hashlib.sha1).digest()
    ).decode()
    assert turn["credential"] == expected
    assert re.fullmatch(r"\d+:[0-9a-f]+", turn["username"])
    assert second[1]["username"] != turn["username"]


async def test_ice_servers_static_turn_credentials() -> None:
    client = await make_client(
        Config(turn_servers=("turn:t.example.test",), turn_user="u", turn_pass='p"</script>')
    )
    try:
        servers = await ice_servers_of(client)
    finally:
        await client.close()
    assert servers == [{"urls": ["turn:t.example.test"], "username": "u", "credential": 'p"</script>'}]


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/static/js/main.js", "javascript"),
        ("/static/css/base.css", "text/css"),
        ("/static/i18n/zh.json", "application/json"),
        ("/static/icon.svg", "image/svg+xml"),
    ],
)
async def test_static_files(
    client: TestClient[web.Request, web.Application], path: str, content_type: str
) -> None:
    response = await client.get(path)
    assert response.status == 200
    # Module scripts need a JavaScript type; text/ and application/javascript both qualify.
    assert response.content_type.endswith(content_type)
    assert response.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize("path", ["/static/../pages.py", "/static/%2e%2e/pages.py", "/static/js/nope.js"])
async def test_static_files_stay_inside_the_static_directory(
    client: TestClient[web.Request, web.Application], path: str
) -> None:
    response = await client.get(path)
    assert response.status in (403, 404)
    assert "setup_pages" not in await response.text()


# ---- rules the markup and scripts keep -------------------------------------------------------------------


async def rendered_pages(client: TestClient[web.Request, web.Application]) -> dict[str, str]:
    return {path: await (await client.get(path)).text() for path in ("/", "/r/room", "/r/bad!")}


async def test_no_inline_script_style_or_handlers(client: TestClient[web.Request, web.Application]) -> None:
    for path, html in (await rendered_pages(client)).items():
        markup = parse(html)
        for attrs, body in markup.scripts:
            if attrs.get("type") == "application/json":
                json.loads(body)
            else:
                assert attrs.get("src", "").startswith("/static/") and not body.strip(), path
        for tag, attrs in markup.elements:
            assert "style" not in attrs, (path, tag, attrs)
            assert not [name for name in attrs if name.startswith("on")], (path, tag, attrs)
            for name in ("src", "href"):
                value = attrs.get(name) or ""
                assert not value.startswith(("http:", "https:", "//", "javascript:")), (path, tag, value)


def test_scripts_are_small_modules_without_eval_or_third_parties() -> None:
    assert len(PAGE_SCRIPTS) >= 8
    for script in PAGE_SCRIPTS:
        text = script.read_text()
        assert len(text.splitlines()) <= 400, script.name
        assert not re.search(r"\beval\s*\(|new Function\s*\(|\.innerHTML\s*=|document\.write", text), (
            script.name
        )
        assert not re.search(r"['\"`]https?://", text), script.name
    for css in (STATIC_DIR / "css").glob("*.css"):
        assert "url(" not in css.read_text() and "@import" not in css.read_text(), css.name


def test_the_page_ships_no_test_hooks() -> None:
    # Tests reach the page from outside (importing its modules in the page, or instrumentation they inject
    # before it runs): nothing the page ships puts state on a global for them.
    for script in sorted(JS_DIR.glob("*.js")):
        assert not re.search(r"\b(?:window|globalThis|self)\.__|__E2E__", script.read_text()), script.name


def load_strings() -> dict[str, dict[str, str]]:
    return {lang: json.loads((STATIC_DIR / "i18n" / f"{lang}.json").read_text()) for lang in ("en", "zh")}


def test_both_languages_have_the_same_strings_and_placeholders() -> None:
    strings = load_strings()
    assert strings["en"].keys() == strings["zh"].keys()
    for key, english in strings["en"].items():
        assert set(re.findall(r"\{\w+\}", english)) == set(re.findall(r"\{\w+\}", strings["zh"][key])), key
        assert strings["zh"][key].strip(), key
    translated = [key for key in strings["en"] if strings["en"][key] != strings["zh"][key]]
    assert len(translated) >= 0.9 * len(strings["en"])


def keys_used_in_markup() -> set[str]:
    keys: set[str] = set()
    for template in TEMPLATE_DIR.glob("*.html"):
        text = template.read_text()
        keys.update(re.findall(r'data-i18n="([a-z0-9_]+)"', text))
        for pairs in re.findall(r'data-i18n-attr="([^"]+)"', text):
            keys.update(pair.split(":")[1] for pair in pairs.split(";"))
        keys.update(re.findall(r"title_key %\}([a-z0-9_]+)\{%", text))
    return keys


def keys_used_in_scripts() -> set[str]:
    """String keys the scripts pass to the i18n helpers (including both arms of a ternary)."""
    literal = re.compile(r"'([a-z][a-z0-9_]*)'")
    keys: set[str] = set()
    for script in PAGE_SCRIPTS:
        text = script.read_text()
        for argument in re.findall(r"(?:\bt|\.show|formError|this\.fail)\(\s*('[a-z0-9_]+')", text):
            keys.update(literal.findall(argument))
        for argument in re.findall(r"setText\([^,]+,\s*([^,)]+)", text):
            keys.update(literal.findall(argument))
        keys.update(re.findall(r"'(err_[a-z0-9_]+)'", text))
        # { key, vars } values: diagnostics rows and events that carry a string to translate later.
        for argument in re.findall(r"\bkey: ([^,}]+)", text):
            keys.update(literal.findall(argument))
        for argument in re.findall(r"this\.(?:retry|drop)\(([^)]*)\)", text):
            keys.update(f"reason_{reason}" for reason in literal.findall(argument))
    return keys


def test_every_string_the_page_shows_is_translated() -> None:
    strings = load_strings()
    used = keys_used_in_markup() | keys_used_in_scripts()
    assert {"join", "mute", "host_lock", "err_room_full", "reason_ws_lost", "title_room"} <= used
    missing = used - strings["en"].keys()
    assert not missing, missing
    unused = strings["en"].keys() - used
    assert not unused, f"strings nobody shows: {unused}"


def test_templates_and_scripts_exist_where_the_package_data_says() -> None:
    for name in PAGE_TEMPLATES:
        assert (TEMPLATE_DIR / name).is_file()
    assert (JS_DIR / "main.js").is_file()
