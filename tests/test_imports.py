"""The package's import graph: no cycle anywhere, and the parts depend on each other in one direction only,
so that the tree keeps showing the data path (contract and settings at the bottom, then operations, the media
plane, the server on top; the client beside the server, never through it).

Every ``import`` statement of every module counts, at any depth: inside functions and under ``TYPE_CHECKING``
too, so that a cycle cannot hide behind a function-level import. Function-level imports of the package are
allowed only where a reason is written down in ``LAZY_IMPORTERS``.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import ghosttalk
from tests.support.calls import TalkingCall
from tests.support.eventually import eventually
from tests.support.server import ServerProcess

PACKAGE_DIR = Path(ghosttalk.__file__).parent

# Which parts each part may import (a part is ghosttalk.<part>; the top-level modules are "base").
ALLOWED: dict[str, frozenset[str]] = {
    # Settings, version, where web/ is: imported by everyone, importing nothing above them.
    "base": frozenset({"base"}),
    # Message shapes and rules shared by the server, the client and the page.
    "contract": frozenset({"base", "contract"}),
    # Bans, event log, metrics, addresses, limits, TURN: know nothing of media or the web server.
    "ops": frozenset({"base", "contract", "ops"}),
    # The media plane: never the server (it is given its hooks) nor the client.
    "media": frozenset({"base", "contract", "ops", "media"}),
    # The cluster (Redis registry, room directory, bus, shared bans): told what it needs of the server through
    # a protocol, never importing it.
    "cluster": frozenset({"base", "contract", "ops", "cluster"}),
    "server": frozenset({"base", "contract", "ops", "media", "cluster", "server"}),
    # The headless participant speaks the contract over the network; it never reaches into the server.
    "client": frozenset({"base", "contract", "media", "client"}),
    "benchmark": frozenset({"base", "contract", "media", "client", "benchmark"}),
    # The command line dispatches to every part.
    "entry": frozenset({"base", "contract", "ops", "media", "cluster", "server", "client", "benchmark", "entry"}),
}
ENTRY_MODULES = frozenset({"ghosttalk.cli", "ghosttalk.__main__"})
# The aiortc adapter wraps aiortc's internals and nothing of ours but the RTP wire format: the rest of the
# media plane builds on it, never the other way round.
ADAPTER = "ghosttalk.media.aiortc_adapter"
ADAPTER_MAY_IMPORT = frozenset({ADAPTER, "ghosttalk.media.rtp"})

# Modules that import parts of the package inside functions, and why (never to dodge a cycle: the cycle check
# counts those imports too).
LAZY_IMPORTERS = {
    "ghosttalk.cli": "each command loads its part only when it runs, so `ghosttalk --help` stays fast and "
    "the server process never imports the client or the benchmark",
    "ghosttalk.server.app": "only a clustered server (--redis-url) loads the cluster and redis-py; a server on its "
    "own never imports them",
    "ghosttalk.server.footprint": "the server's imports start only once the stand-ins and the empty CA file that "
    "keep unused modules and certificates out of the process are in place",
}


@dataclass(frozen=True, slots=True)
class Edge:
    importer: str
    imported: str
    line: int
    in_function: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def _imports(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement with whether it sits inside a function."""

    def walk(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, in_function
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from walk(child, inside)

    return walk(tree, False)


def _resolve(importer: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules of the package that ``node`` names (``from X import Y`` names X.Y when that is a module)."""
    known = modules()
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = importer if is_package else importer.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    found: list[str] = []
    for target in targets:
        if target != "ghosttalk" and not target.startswith("ghosttalk."):
            continue
        # Importing a.b.c runs a/__init__ and a/b/__init__ first: those count, except the importer's own
        # ancestors, which are imported before it anyway.
        pieces = target.split(".")
        for depth in range(1, len(pieces) + 1):
            candidate = ".".join(pieces[:depth])
            if candidate in known and not (importer == candidate or importer.startswith(candidate + ".")):
                found.append(candidate)
    return list(dict.fromkeys(found))


def edges() -> list[Edge]:
    result = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, in_function in _imports(tree):
            for imported in _resolve(name, path.name == "__init__.py", node):
                if imported != name:
                    result.append(Edge(name, imported, node.lineno, in_function))
    return result


def part(module: str) -> str:
    if module in ENTRY_MODULES:
        return "entry"
    pieces = module.split(".")
    if len(pieces) == 1:
        return "base"  # ghosttalk/__init__.py
    if (PACKAGE_DIR / pieces[1]).is_dir():
        return pieces[1]
    return "base"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that starts and ends on the same module, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_no_import_cycle_anywhere_in_the_package() -> None:
    graph: dict[str, set[str]] = {}
    for edge in edges():
        graph.setdefault(edge.importer, set()).add(edge.imported)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_each_part_imports_only_the_parts_below_it() -> None:
    wrong = [
        f"{edge.importer}:{edge.line} ({part(edge.importer)}) imports {edge.imported} ({part(edge.imported)})"
        for edge in edges()
        if part(edge.imported) not in ALLOWED[part(edge.importer)]
    ]
    assert not wrong, "\n".join(wrong)


def test_the_aiortc_adapter_builds_on_nothing_of_ours_but_rtp() -> None:
    wrong = [
        f"{edge.importer}:{edge.line} imports {edge.imported}"
        for edge in edges()
        if edge.importer.startswith(ADAPTER)
        and not any(
            edge.imported == allowed or edge.imported.startswith(allowed + ".") for allowed in ADAPTER_MAY_IMPORT
        )
        and edge.imported not in ("ghosttalk", "ghosttalk.media")
    ]
    assert not wrong, "\n".join(wrong)


def test_function_level_imports_of_the_package_have_a_written_reason() -> None:
    wrong = [
        f"{edge.importer}:{edge.line} imports {edge.imported} inside a function"
        for edge in edges()
        if edge.in_function and edge.importer not in LAZY_IMPORTERS
    ]
    assert not wrong, "\n".join(wrong) + "\n(import at the top; if that makes a cycle, move what is shared)"


# The checks themselves, on graphs made up for them.


def test_a_cycle_is_found_and_named() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


@pytest.mark.parametrize(
    ("source", "importer", "expected"),
    [
        (
            "def f():\n    from ghosttalk.server import rooms\n",
            "ghosttalk.ops.metrics",
            ["ghosttalk.server", "ghosttalk.server.rooms"],
        ),
        ("from .forwarder import Speaker\n", "ghosttalk.media.peer", ["ghosttalk.media.forwarder"]),
        ("from ..ops.bans import BANS\n", "ghosttalk.server.admin", ["ghosttalk.ops", "ghosttalk.ops.bans"]),
        (
            "import ghosttalk.server.rooms as rooms\n",
            "ghosttalk.media.plane",
            ["ghosttalk.server", "ghosttalk.server.rooms"],
        ),
        ("import orjson\n", "ghosttalk.server.app", []),
    ],
)
def test_imports_are_resolved_at_any_depth(source: str, importer: str, expected: list[str]) -> None:
    found = [module for node, _ in _imports(ast.parse(source)) for module in _resolve(importer, False, node)]
    assert found == expected


# What a running server has imported, and what it must not have: serving forwards packets untouched, so no
# media library (PyAV, numpy, plotting), no mDNS resolver (dnspython: mDNS candidates are dropped before ICE),
# no C parser (the batched socket's declarations are compiled out of line, ghosttalk.media.mmsg_declarations),
# and none of the tools built on the client.
NEVER_IN_THE_SERVER = (
    "av", "numpy", "matplotlib", "PIL", "dns", "pycparser", "ghosttalk.client", "ghosttalk.benchmark",
)  # fmt: skip

# Runs ``python -m ghosttalk`` as the server does and, at exit, lists every module it imported with whether
# it came from a file (the stand-ins of ghosttalk.media.pyav_standin do not), then how many certificates its
# TLS contexts hold.
_LISTING_SERVER = """
import atexit, gc, runpy, ssl, sys

listing = sys.argv.pop(1)


def record() -> None:
    with open(listing, "w") as out:
        for name, module in sorted(sys.modules.items()):
            out.write(f"module {name} {getattr(module, '__file__', None) is not None}\\n")
        contexts = [obj for obj in gc.get_objects() if isinstance(obj, ssl.SSLContext)]
        out.write(f"certificates {sum(c.cert_store_stats()['x509'] for c in contexts)} in {len(contexts)}\\n")


atexit.register(record)
runpy.run_module("ghosttalk", run_name="__main__", alter_sys=True)
"""


class ListingServer(ServerProcess):
    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.listing = data_dir / "modules.txt"

    def command(self) -> list[str]:
        python, dash_m, package, *flags = super().command()
        assert (dash_m, package) == ("-m", "ghosttalk")
        return [python, "-c", _LISTING_SERVER, str(self.listing), *flags]


def _imported_from_files(listing: str) -> set[str]:
    return {line.split()[1] for line in listing.splitlines() if line.startswith("module ") and line.endswith(" True")}


async def test_a_running_server_imports_only_what_serving_uses(tmp_path: Path) -> None:
    server = ListingServer(tmp_path / "server")
    await asyncio.to_thread(server.start)
    try:
        # A call through it first: modules imported on the way (lazily, when someone joins) count too.
        call = await TalkingCall.join(server.url, "imports", ["ann", "ben"])
        try:
            call.start()
            await eventually(lambda: min(call.delivered(0, 1), call.delivered(1, 0)), 10, what="the call talking",
                             until=lambda n: n >= 5)  # fmt: skip
        finally:
            await call.close()
    finally:
        code = await asyncio.to_thread(server.stop)
    assert code == 0, server.console()[-3000:]
    listing = server.listing.read_text()
    imported = _imported_from_files(listing)
    assert "aiortc.rtcpeerconnection" in imported and "aiohttp.web" in imported  # the listing is the server's
    assert "ghosttalk.media._mmsg_cffi" in imported  # the batched socket was in use
    unwanted = sorted(
        name for name in imported if any(name == bad or name.startswith(bad + ".") for bad in NEVER_IN_THE_SERVER)
    )
    assert not unwanted, f"the server imported {unwanted}"
    # aiohttp's client context, made at import, holds no CA certificates (see ghosttalk.server.footprint).
    assert "certificates 0 in " in listing, listing.splitlines()[-1]


def test_the_listing_tells_real_modules_from_stand_ins() -> None:
    listing = "module aioice.mdns False\nmodule dns.message True\nmodule av False\ncertificates 0 in 2\n"
    assert _imported_from_files(listing) == {"dns.message"}
