"""DTLS-SRTP: one identity for every connection, the SRTP sessions the fast path uses, and the headless
client's direct send and receive.

aiortc makes a key, a certificate and an OpenSSL context for every connection (about 120 kB and a
millisecond of CPU each); the server uses one :class:`SharedDtlsIdentity` for all of them. Ingress RTP:
``RTCDtlsTransport._handle_rtp_data`` is replaced per instance (:func:`tap_rtp`), so any packet that still
takes aiortc's path reaches our handler instead of the receiver's jitter buffer and decoder thread.

DTLS role: aiortc applies the ``a=setup`` of every m-section of every answer to the one shared (bundled)
transport, the last section winning; :func:`keep_dtls_roles` fixes each transport's role once the first
offer/answer exchange has decided it (RFC 8842: an exchange that keeps a DTLS association keeps its roles).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from aioice.ice import StunProtocol
from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsFingerprint, RTCDtlsTransport, SRTPProtectionProfile
from OpenSSL import SSL

from ghosttalk.media.aiortc_adapter.ice import Address, dtls_transports
from ghosttalk.media.aiortc_adapter.srtp import SRTP_ERRORS, fast_transform
from ghosttalk.media.rtp import RTCP_PAYLOAD_TYPES

logger = logging.getLogger(__name__)


def srtp_sessions(dtls: RTCDtlsTransport) -> tuple[Any, Any] | None:
    """(receive, transmit) pylibsrtp sessions once DTLS has completed, else None."""
    if dtls.state != "connected" or dtls._rx_srtp is None or dtls._tx_srtp is None:
        return None
    return dtls._rx_srtp, dtls._tx_srtp


def tap_rtp(dtls: RTCDtlsTransport, handler: Callable[[bytes], None]) -> None:
    """Route decrypted RTP that takes aiortc's own path (before the fast path is set) to ``handler``,
    never to the receiver's jitter buffer and decoder."""

    async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
        handler(data)

    setattr(dtls, "_handle_rtp_data", handle_rtp_data)  # noqa: B010 (a per-instance override)


class _PinnedRole:
    """Stands in for one transport's ``_set_role`` once its role is settled: the role stays, a request for the
    other one is ignored."""

    __slots__ = ("role",)

    def __init__(self, role: str) -> None:
        self.role = role

    def __call__(self, role: str) -> None:
        if role != self.role:
            logger.debug("a description asked for DTLS role %s; the established role %s stays", role, self.role)


def keep_dtls_roles(pc: RTCPeerConnection) -> None:
    """Fix the DTLS role (client or server) of every transport of ``pc`` that has one, for the transport's
    life. Call once an offer/answer exchange has completed; idempotent, later calls only pin transports
    that have been given a role since.

    Why: aiortc's ``setRemoteDescription`` hands each m-section's ``a=setup`` to the transport's
    ``_set_role``, and with BUNDLE every section shares one transport, so the last section wins. Firefox
    answers a re-offer ``passive`` on its audio section and ``active`` on a new ``m=application`` section;
    Pion answers ``active`` to every re-offer. Either would flip the role: before the handshake both sides
    wait as DTLS servers; during it the SRTP keys are derived for the wrong side; after it data channel ids
    take the other side's parity (RFC 8832) and our next answer claims the other role, which a browser
    refuses for a transport that is up. aiortc reads the role when the handshake starts, when it derives
    the SRTP keys, for SCTP stream ids, and when it writes ``a=setup`` in an answer; all of them now see the
    role the first exchange settled."""
    for transport in dtls_transports(pc):
        role = transport._role
        if role in ("client", "server") and not isinstance(vars(transport).get("_set_role"), _PinnedRole):
            setattr(transport, "_set_role", _PinnedRole(role))  # noqa: B010 (a per-instance override)


class _ReusableCertificate(RTCCertificate):
    """An ``RTCCertificate`` whose OpenSSL context is made once and shared by every DTLS connection using it.
    aiortc only reads the context (``SSL.Connection(ctx)``); the session cache is switched off because no
    connection can resume another's session and a shared cache would only grow."""

    def __init__(self, key: Any, cert: Any) -> None:
        super().__init__(key, cert)
        self._contexts: dict[tuple[bytes, ...], SSL.Context] = {}
        # SHA-256 alone: the hash the certificate is signed with, the one every browser sends and checks
        # (aiortc would add SHA-384 and SHA-512 to every m-line of every description, about 400 bytes each).
        self._fingerprints = [f for f in super().getFingerprints() if f.algorithm == "sha-256"]

    def getFingerprints(self) -> list[RTCDtlsFingerprint]:
        # aiortc asks for every m-line of every description and would hash the certificate each time; the
        # fingerprint of one certificate never changes, and nothing modifies it.
        return list(self._fingerprints)

    def _create_ssl_context(self, srtp_profiles: list[SRTPProtectionProfile]) -> SSL.Context:
        profiles = tuple(profile.openssl_profile for profile in srtp_profiles)
        context = self._contexts.get(profiles)
        if context is None:
            context = super()._create_ssl_context(srtp_profiles)
            context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
            # Idle connections give their 16 kB read and write buffers back (the heartbeat wakes them rarely).
            context.set_mode(SSL.MODE_RELEASE_BUFFERS)
            self._contexts[profiles] = context
        return context


class SharedDtlsIdentity:
    """The server's DTLS key and certificate, shared by every connection and renewed daily (aiortc's
    certificates are valid for 30 days; a connection keeps the one it started with). Browsers pin the
    fingerprint from the SDP, not a chain, so one identity per server process is as good as one per peer;
    it identifies the server, never a person."""

    def __init__(self, lifetime_seconds: float = 86400.0) -> None:
        self._lifetime = lifetime_seconds
        self._certificate = _ReusableCertificate.generateCertificate()
        self._created = time.monotonic()

    def certificate(self) -> RTCCertificate:
        if time.monotonic() - self._created > self._lifetime:
            self._certificate = _ReusableCertificate.generateCertificate()
            self._created = time.monotonic()
        return self._certificate

    def apply(self, pc: RTCPeerConnection) -> None:
        """Give a fresh ``pc`` this identity instead of its own; call before it creates any transport."""
        setattr(pc, "_RTCPeerConnection__certificates", [self.certificate()])  # noqa: B010 (private)


def srtp_writer(dtls: RTCDtlsTransport) -> Callable[[bytes], None] | None:
    """A synchronous 'protect and send' on the selected candidate pair (plain UDP or a TURN relay), for the
    headless client, which writes its own RTP instead of running aiortc's encoder loop."""
    sessions = srtp_sessions(dtls)
    pair = dtls.transport._connection._nominated.get(1)
    if sessions is None or pair is None:
        return None
    protect = sessions[1].protect
    transport, addr = pair.protocol.transport, pair.remote_addr

    def write(packet: bytes) -> None:
        transport.sendto(protect(packet), addr)

    return write


def receive_rtp_directly(dtls: RTCDtlsTransport, handler: Callable[[bytes], None]) -> bool:
    """For the headless client, once DTLS is up: decrypt SRTP from the remote address in the socket's own
    callback and hand the RTP to ``handler``, as the server's shared socket does, instead of aioice's STUN
    parse attempt, queue and task switch and aiortc's receive loop (RTCP and DTLS still go that way). Works
    through a TURN relay too (aioice hands relayed datagrams to the same protocol object); not applied, and
    False returned, when something else (a simulated link) already wraps the protocol."""
    sessions = srtp_sessions(dtls)
    pair = dtls.transport._connection._nominated.get(1)
    if sessions is None or pair is None:
        return False
    protocol = pair.protocol
    if type(protocol) is not StunProtocol or "datagram_received" in vars(protocol):
        return False
    unprotect = fast_transform(sessions[0].unprotect)
    remote, original = pair.remote_addr, protocol.datagram_received

    def datagram_received(data: bytes, addr: Address) -> None:
        if addr == remote and len(data) >= 12 and 127 < data[0] < 192 and data[1] not in RTCP_PAYLOAD_TYPES:
            try:
                plain = unprotect(data)
            except SRTP_ERRORS:
                return  # a replay or a forgery: dropped, as aiortc would
            handler(plain)
        else:
            original(data, addr)

    setattr(protocol, "datagram_received", datagram_received)  # noqa: B010 (a per-instance override)
    return True
