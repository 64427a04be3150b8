"""SRTP protect and unprotect for the forwarding path, calling libsrtp directly.

pylibsrtp's ``Session.protect``/``unprotect`` allocate a length cell, check types and copy through a Python
method on every call: about a third of the cost of protecting an 80-byte packet. The forwarder calls them
once per ingress packet and once per receiver (and ``unprotect_rtcp`` per incoming report), so it uses the
same libsrtp context through pylibsrtp's own cffi binding, with a buffer and length cell of its own per
transform. Anything not recognisably such a bound method of a pylibsrtp that exposes these is used as is.
``tests/test_srtp.py`` checks that both paths produce the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pylibsrtp

try:
    from pylibsrtp._binding import ffi, lib
except ImportError:  # a pylibsrtp without the cffi module we know: the public methods still work
    ffi = lib = None

Transform = Callable[[bytes], bytes]
# Failures of a packet's own SRTP transform: that packet is dropped, the stream goes on.
SRTP_ERRORS = (pylibsrtp.Error, ValueError)

# libsrtp's largest RTP packet buffer in pylibsrtp and the trailer protect may append (auth tag + MKI).
_BUFFER_BYTES = 1500
_PROTECT_TRAILER = 144


def fast_transform(method: Transform) -> Transform:
    """An equivalent of ``session.protect``, ``unprotect`` or ``unprotect_rtcp`` (given as that bound method)
    that skips pylibsrtp's per-call wrapper; raises ``pylibsrtp.Error`` and ``ValueError`` as pylibsrtp does."""
    session = getattr(method, "__self__", None)
    name = getattr(method, "__name__", "")
    context = getattr(session, "_srtp", None)
    if lib is None or not isinstance(session, pylibsrtp.Session) or context is None:
        return method
    if name == "protect":
        return _transform(session, lib.srtp_protect, _PROTECT_TRAILER)
    if name == "unprotect":
        return _transform(session, lib.srtp_unprotect, 0)
    if name == "unprotect_rtcp":
        return _transform(session, lib.srtp_unprotect_rtcp, 0)
    return method


@dataclass(frozen=True, slots=True)
class InPlaceProtect:
    """libsrtp's protect on a buffer of the caller's (the forwarder's send slots): ``function(context, buffer,
    length)`` protects ``length[0]`` bytes of ``buffer`` in place, sets ``length[0]`` to the protected size and
    returns 0, or a libsrtp error code."""

    function: Callable[[Any, Any, Any], int]
    context: Any
    # Owns the context (libsrtp's session is freed by its finaliser).
    session: pylibsrtp.Session


def in_place_protect(method: Transform) -> InPlaceProtect | None:
    """The in-place form of ``session.protect`` (given as that bound method), or None where pylibsrtp's
    binding is not the one we know (the caller then uses the method itself)."""
    session = getattr(method, "__self__", None)
    if lib is None or not isinstance(session, pylibsrtp.Session) or getattr(method, "__name__", "") != "protect":
        return None
    context = getattr(session, "_srtp", None)
    if context is None:
        return None
    return InPlaceProtect(lib.srtp_protect, context[0], session)


def _transform(session: pylibsrtp.Session, function: Callable[..., int], trailer: int) -> Transform:
    srtp = session._srtp[0]
    cdata = ffi.new("char[]", _BUFFER_BYTES)
    buffer = ffi.buffer(cdata)
    length = ffi.new("int *")
    limit = _BUFFER_BYTES - trailer
    ok = lib.srtp_err_status_ok

    def transform(packet: bytes) -> bytes:
        size = len(packet)
        if size > limit:
            raise ValueError("packet is too long")
        buffer[0:size] = packet
        length[0] = size
        status = function(srtp, cdata, length)
        if status != ok:
            raise pylibsrtp.Error(f"libsrtp error {status}")
        return buffer[0 : length[0]]  # type: ignore[no-any-return]

    # The closure keeps the session (and so its libsrtp context, freed by the session's finaliser) alive.
    transform.__dict__["session"] = session
    return transform
