"""The one place that opens aiortc's, aioice's and pylibsrtp's private parts.

GhostTalk forwards RTP without decoding and runs every peer's ICE on one UDP socket; neither is a public
feature of aiortc 1.16.0 / aioice 0.13.0, so this package reaches into them, and nothing else does. One
module per concern:

* ``ice``: ICE on the shared socket (aioice's candidate gathering replaced per connection, STUN that the
  shared socket has authenticated handed to aioice, every send through the socket's guard, aiortc's DTLS
  receive guarded against exceptions, the selected pair), and the headless client's datagram filter.
* ``dtls``: one DTLS identity and OpenSSL context for every connection (:class:`dtls.SharedDtlsIdentity`),
  the DTLS role fixed by the first negotiation (``keep_dtls_roles``), the SRTP sessions the fast path uses,
  aiortc's RTP handler taken over (``tap_rtp``), and the headless client's direct SRTP send and receive.
* ``negotiation``: offers that keep what the browser's first negotiation settled (payload types,
  header-extension ids), what was negotiated (payload types, SSRCs, msid, CNAME), and the descriptions aiortc
  keeps without what it never reads again.
* ``endpoints``: no aiortc loop per stream (``skip_loops``: the forwarder writes RTP and the connection's
  report loop RTCP, ``ghosttalk.media.reports``), no decoder thread, and receivers of send-only lines
  without what they would need to receive.
* ``rtcp``: the statistics our receiver reports carry, fed without aiortc's jitter buffer, and the client's
  sender-report counters.
* ``srtp``: SRTP protect and unprotect straight into libsrtp through pylibsrtp 1.0.0's own cffi binding.

``ghosttalk.media.pyav_standin`` is the other piece of the contract (stand-ins for PyAV and for aioice's mDNS
resolver): it must act before aiortc is imported.
``tests/test_adapter_pins.py`` checks the pinned versions and every attribute used here, so an upgrade
fails loudly in the suite instead of silently falling back to decoding.
"""

from __future__ import annotations

import aioice
import aiortc
import pylibsrtp

PINNED_AIORTC = "1.16.0"
PINNED_AIOICE = "0.13.0"
# ``srtp`` calls the C functions behind pylibsrtp's private cffi binding.
PINNED_PYLIBSRTP = "1.0.0"


def check_pinned_versions() -> None:
    """Refuse to run on aiortc/aioice/pylibsrtp versions whose internals this package has not been checked
    against."""
    found = (aiortc.__version__, aioice.__version__, pylibsrtp.__version__)
    pinned = (PINNED_AIORTC, PINNED_AIOICE, PINNED_PYLIBSRTP)
    if found != pinned:
        raise RuntimeError(
            f"GhostTalk's media adapter is written for aiortc {pinned[0]}, aioice {pinned[1]} and pylibsrtp "
            f"{pinned[2]}, found {found[0]}, {found[1]} and {found[2]}; install the pinned versions"
        )
