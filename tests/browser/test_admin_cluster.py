"""The admin panel of a cluster node shows the whole cluster: every node's health and load, every node's rooms
with the node that holds each, and every node's events; its Kick reaches a person on another node. A server
without a cluster shows none of that. Firefox draws the Nodes section too."""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route

from ghosttalk.client.participant import Client
from ghosttalk.contract.rules import CloseCode
from tests.browser.test_a11y import axe_violations
from tests.conftest import RELAXED_LIMITS
from tests.support.browser.firefox import FirefoxTab, running_firefox
from tests.support.cluster import Cluster
from tests.support.eventually import eventually_sync
from tests.support.headless import HeadlessPeople
from tests.support.redis import RedisServer
from tests.support.server import ServerProcess

pytestmark = pytest.mark.browser

ANN_ROOM = "cluster-admin-one"
BOB_ROOM = "cluster-admin-two"


@dataclass(slots=True)
class Nodes:
    """Two nodes on one Redis, Ann in a room on node1 and Bob in one on node2 (each joined through its own)."""

    cluster: Cluster
    bob: Client


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    folder = tmp_path_factory.mktemp("cluster-admin")
    with (
        RedisServer(folder / "redis") as redis,
        Cluster(folder, redis, nodes=2, extra_args=RELAXED_LIMITS) as cluster,
        HeadlessPeople(cluster.nodes[0].url).running() as ann,
        HeadlessPeople(cluster.nodes[1].url).running() as bob,
    ):
        ann.join(ANN_ROOM, "Ann")
        bob_client = bob.join(BOB_ROOM, "Bob")
        # A new room goes to the least-loaded node, the asking one on a tie: Bob's to node2, where he asked.
        for room, node in ((ANN_ROOM, "node1"), (BOB_ROOM, "node2")):
            eventually_sync(
                partial(cluster.room_node, room), 10, what=f"{room} placed", until=partial(operator.eq, node)
            )
        yield Nodes(cluster, bob_client)


def open_panel(browser: Browser, node: ServerProcess) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{node.url}/admin#key={node.admin_key}")
    page.wait_for_selector("#status:has-text('Updated')")
    return page


def node_rows(page: Page) -> dict[str, list[str]]:
    """Each row of the Nodes table by its node id: the cells' texts."""
    rows = page.eval_on_selector_all(
        "#nodes tr", "rows => rows.map(r => [r.dataset.node, [...r.cells].map(c => c.innerText.trim())])"
    )
    return {str(node): [str(text) for text in cells] for node, cells in rows}


def test_the_panel_on_one_node_shows_and_acts_on_the_whole_cluster(browser: Browser, nodes: Nodes) -> None:
    node1 = nodes.cluster.nodes[0]
    page = open_panel(browser, node1)
    try:
        page.wait_for_selector("#nodes-section:not([hidden]) #nodes tr[data-node='node2']")
        eventually_sync(
            lambda: node_rows(page),
            10,
            what="both nodes ok, one person and one room each",
            until=lambda rows: (
                sorted(rows) == ["node1", "node2"]
                and all(cells[1] == "ok" and cells[2:4] == ["1", "1"] for cells in rows.values())
            ),
        )
        rows = node_rows(page)
        assert rows["node1"][0] == "node1 this node"
        assert rows["node2"][0] == "node2"
        assert rows["node2"][5] == str(nodes.cluster.nodes[1].rtc_port)
        assert rows["node2"][6]  # where its media is reached
        assert rows["node1"][4].endswith(" %")
        stats = page.inner_text("#stats")
        assert "Node\nnode1" in stats and "Redis\nok" in stats
        assert page.is_hidden("#redis-warning")

        # Both nodes' rooms, each saying which node holds it.
        for room, node in ((ANN_ROOM, "node1"), (BOB_ROOM, "node2")):
            page.wait_for_selector(f"#rooms article[data-room='{room}'] h3 .room-node .mono:text-is('{node}')")
        assert page.inner_text(f"#rooms article[data-room='{ANN_ROOM}'] h3 .room-node") == "Node node1"
        assert page.is_hidden("#rooms-partial")

        # The events of both nodes in one list, each naming its node (Bob joined on node2).
        assert page.is_visible("#events-node")
        page.wait_for_selector("#events tr:has(td:nth-child(2):text-is('node2'))")
        page.wait_for_selector("#events tr:has(td:nth-child(2):text-is('node1'))")

        # Kick Bob, who is on node2, from node1's panel.
        page.click(f"#rooms article[data-room='{BOB_ROOM}'] button[data-action='kick']")
        page.wait_for_selector("#message:has-text('Kicked')")
        eventually_sync(
            lambda: nodes.bob.close_code,
            10,
            what="Bob's socket closed as kicked",
            until=partial(operator.eq, CloseCode.KICKED),
        )
        page.wait_for_selector(f"#rooms article[data-room='{BOB_ROOM}']", state="detached", timeout=10_000)
    finally:
        page.context.close()


def test_a_single_server_panel_shows_no_cluster(browser: Browser, server: ServerProcess) -> None:
    with HeadlessPeople(server.url).running() as people:
        people.join(ANN_ROOM, "Ann")
        page = open_panel(browser, server)
        try:
            page.wait_for_selector(f"#rooms article[data-room='{ANN_ROOM}']")
            page.wait_for_selector("#events tr")
            assert page.is_hidden("#nodes-section")
            assert page.is_hidden("#events-node")
            assert page.is_hidden("#rooms-partial")
            assert page.locator(".room-node").count() == 0
            assert page.eval_on_selector_all("#stats dt", "items => items.map(i => i.textContent)") == [
                "Rooms", "People", "Connections", "Bans", "Uptime", "Version",
            ]  # fmt: skip
            # The events table has as many cells in a row as it has columns shown.
            assert page.eval_on_selector("#events tr", "row => row.cells.length") == 7
        finally:
            page.context.close()


def cluster_answers(route: Route) -> None:
    """A cluster's answers in the states a live test cannot hold still: this node cut off from Redis, one
    node draining, one not heard from for seconds, and the rooms of a node that did not answer missing."""
    response = route.fetch()
    answer = response.json()
    action = route.request.url.split("action=")[1].split("&")[0]
    if action == "stats":
        node = {"http": "", "media": ["127.0.0.1"], "udp_port": 0, "people": 0, "rooms": 0, "cpu": 0.0,
                "started": 0, "version": "1.0"}  # fmt: skip
        answer |= {
            "node": "a", "redis": "unreachable", "draining": True,
            "nodes": [
                {**node, "id": "a", "self": True, "draining": True, "seen": 0.0},
                {**node, "id": "b", "self": False, "draining": False, "seen": 4.2},
            ],
        }  # fmt: skip
    elif action == "rooms":
        answer = {"rooms": [{**room, "node": "a"} for room in answer["rooms"]], "unreachable": ["b", "c"]}
    route.fulfill(response=response, body=json.dumps(answer))


def test_stale_draining_and_unreachable_nodes_are_called_out(browser: Browser, server: ServerProcess) -> None:
    # axe comes in as an inline script, which the page's script policy would block.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    context.route(re.compile(r"/admin\?action="), cluster_answers)
    page = context.new_page()
    try:
        page.goto(f"{server.url}/admin#key={server.admin_key}")
        page.wait_for_selector("#nodes tr[data-node='b']")
        rows = node_rows(page)
        assert rows["a"][:2] == ["a this node", "draining"]
        assert rows["b"][:2] == ["b", "stale: last heard 4 s ago"]
        assert page.is_visible("#redis-warning")
        assert "cannot reach Redis" in page.inner_text("#redis-warning")
        stats = page.inner_text("#stats")
        assert "Redis\nunreachable" in stats and "State\ndraining: takes no new rooms" in stats
        notice = page.inner_text("#rooms-partial")
        assert notice == "Some rooms may be missing; these nodes did not answer: b, c"
        # With rooms missing, the panel does not claim that no one is here.
        assert page.is_hidden("#rooms-empty")
        # Every part of the cluster's view shown at once, in both colour schemes: nothing axe calls serious.
        found = []
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            found += axe_violations(page, f"cluster admin panel, {scheme}")
        assert found == [], "\n".join(found)
    finally:
        context.close()


def test_firefox_draws_the_nodes_section(nodes: Nodes, tmp_path: Path) -> None:
    node1 = nodes.cluster.nodes[0]
    with running_firefox(tmp_path, with_sound=False) as firefox:
        tab = FirefoxTab(firefox, firefox.new_window())
        firefox.marionette.switch_to_window(tab.handle, focus=False)
        firefox.marionette.navigate(f"{node1.url}/admin#key={node1.admin_key}")
        tab.wait_for(
            "() => document.querySelectorAll('#nodes tr[data-node]').length === 2"
            " && !document.getElementById('nodes-section').hidden",
            15,
            "both nodes listed",
        )
        assert tab.inner_text("#nodes tr[data-node='node1'] td").strip() == "node1 this node"
        assert tab.evaluate("() => document.querySelectorAll('#rooms .room-node').length") >= 1
