"""Keeps PyAV (FFmpeg) out of the server process.

aiortc imports PyAV from its package ``__init__``, for codecs and media tracks the SFU never uses: it forwards
Opus packets untouched. Loading PyAV (about fifty extension modules and FFmpeg's libraries) costs the server
18 MB of its idle footprint, a fifth of it. So ``ghosttalk serve``, before anything imports aiortc, installs
an import hook that answers ``import av`` and ``import av.*`` with stand-in modules. Every name taken from
them is a placeholder class: good for the annotations, ``Union``\\ s and ``isinstance`` checks aiortc evaluates
at import time, and refusing to be instantiated, so that anything trying to encode or decode in the server
fails loudly instead of quietly pulling FFmpeg in.

This is part of the adapter contract with aiortc (the ``aiortc_adapter`` package holds the rest; this piece must act
before aiortc is imported, so it cannot live there). ``tests/test_adapter_pins.py`` imports the server under the
stand-in in a fresh interpreter and negotiates a connection, and checks a running server has no FFmpeg mapped.
The headless client and ``ghosttalk join`` use the real PyAV: they encode and decode.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence
from typing import Any

_PACKAGE = "av"


class PyAVUnavailable(RuntimeError):
    """Raised by any attempt to use PyAV in the server process."""


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


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _PACKAGE and not fullname.startswith(_PACKAGE + "."):
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _StandInModule(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__path__ = []  # a package, so that ``av.frame`` and friends resolve through this finder too


def keep_pyav_out() -> bool:
    """Install the stand-in for this process; False (and nothing done) if PyAV is already imported."""
    if _PACKAGE in sys.modules:
        return False
    if not any(isinstance(finder, _StandInFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _StandInFinder())
    return True


def pyav_is_stood_in() -> bool:
    return isinstance(sys.modules.get(_PACKAGE), _StandInModule)
