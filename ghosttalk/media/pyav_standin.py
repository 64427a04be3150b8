"""Keeps PyAV (FFmpeg) and aioice's mDNS resolver (dnspython) out of the server process.

aiortc imports PyAV from its package ``__init__``, for codecs and media tracks the SFU never uses: it forwards
Opus packets untouched. Loading PyAV (about fifty extension modules and FFmpeg's libraries) costs the server
18 MB of its idle footprint, a fifth of it. So ``ghosttalk serve``, before anything imports aiortc, installs
an import hook that answers ``import av`` and ``import av.*`` with stand-in modules. Every name taken from
them is a placeholder class: good for the annotations, ``Union``\\ s and ``isinstance`` checks aiortc evaluates
at import time, and refusing to be instantiated, so that anything trying to encode or decode in the server
fails loudly instead of quietly pulling FFmpeg in.

aioice imports ``aioice.mdns``, and through it dnspython (46 modules, 2 MB), to resolve the ``.local`` names
that browsers put in place of LAN addresses. The server never resolves one: the candidate filter
(``ghosttalk.media.description``) drops every mDNS candidate before aioice sees it, since a public server
cannot reach a name on somebody's LAN and must not multicast. The same hook answers ``import aioice.mdns``
with a module of the three names ``aioice.ice`` uses: ``is_mdns_hostname`` (which says what the filter says)
and a resolver that refuses to start.

This is part of the adapter contract with aiortc (the ``aiortc_adapter`` package holds the rest; this piece must act
before aiortc is imported, so it cannot live there). ``tests/test_adapter_pins.py`` imports the server under the
stand-ins in a fresh interpreter and negotiates a connection, checks that ``aioice.ice`` uses no other name of
``aioice.mdns``, and that a running server has no FFmpeg mapped; ``tests/test_imports.py`` checks what a
running server has imported. The headless client and ``ghosttalk join`` use the real modules.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence
from typing import Any

_PYAV = "av"
_MDNS = "aioice.mdns"


class PyAVUnavailable(RuntimeError):
    """Raised by any attempt to use PyAV in the server process."""


class MdnsUnavailable(RuntimeError):
    """Raised by any attempt to resolve an mDNS name in the server process."""


class _Placeholder:
    """What every name in a stand-in module is (a fresh subclass per name)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Placeholder:
        raise PyAVUnavailable(
            f"{cls.__module__}.{cls.__name__} was used, but the GhostTalk server does not load PyAV: "
            "it forwards audio without decoding it (see ghosttalk/media/pyav_standin.py)"
        )


class _StandInModule(types.ModuleType):
    def __getattr__(self, name: str) -> type[_Placeholder]:
        if name.startswith("__"):
            raise AttributeError(name)  # module protocol lookups (__file__, __all__, ...) find nothing
        placeholder = type(name, (_Placeholder,), {"__module__": self.__name__, "__qualname__": name})
        setattr(self, name, placeholder)
        return placeholder


class _MdnsStandIn(types.ModuleType):
    """What ``aioice.ice`` reads of ``aioice.mdns``, without a resolver behind it."""

    class MDnsProtocol(asyncio.DatagramProtocol):
        """Only named (in an annotation and a ``cast``); never made, since no resolver starts."""

    @staticmethod
    def is_mdns_hostname(name: str) -> bool:
        # The candidate filter's own test: such a candidate never reaches aioice.
        return name.lower().endswith(".local")

    @staticmethod
    async def create_mdns_protocol() -> _MdnsStandIn.MDnsProtocol:
        raise MdnsUnavailable(
            "aioice tried to resolve an mDNS candidate, but the GhostTalk server drops them before ICE and "
            "does not load a resolver (see ghosttalk/media/pyav_standin.py)"
        )


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self) -> None:
        self.pyav = False
        self.mdns = False

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if self.pyav and (fullname == _PYAV or fullname.startswith(_PYAV + ".")):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        if self.mdns and fullname == _MDNS:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        if spec.name == _MDNS:
            return _MdnsStandIn(spec.name)
        return _StandInModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        if isinstance(module, _StandInModule):
            module.__path__ = []  # a package, so that ``av.frame`` and friends resolve through this finder too


def _finder() -> _StandInFinder:
    for finder in sys.meta_path:
        if isinstance(finder, _StandInFinder):
            return finder
    finder = _StandInFinder()
    sys.meta_path.insert(0, finder)
    return finder


def keep_pyav_out() -> bool:
    """Install the PyAV stand-in for this process; False (and nothing done) if PyAV is already imported."""
    if _PYAV in sys.modules:
        return False
    _finder().pyav = True
    return True


def keep_mdns_out() -> bool:
    """Install the ``aioice.mdns`` stand-in for this process; False (and nothing done) if aioice's own is
    already imported."""
    if _MDNS in sys.modules:
        return False
    _finder().mdns = True
    return True


def pyav_is_stood_in() -> bool:
    return isinstance(sys.modules.get(_PYAV), _StandInModule)


def mdns_is_stood_in() -> bool:
    return isinstance(sys.modules.get(_MDNS), _MdnsStandIn)
