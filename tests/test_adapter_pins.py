"""Fails loudly when aiortc/aioice move under the adapter (the ghosttalk.media.aiortc_adapter package)."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from typing import Any

import aioice
import aiortc
import pylibsrtp
from aioice.ice import CandidatePair, Connection, StunProtocol
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsTransport
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtcsctptransport import RTCSctpTransport

from ghosttalk.media import aiortc_adapter
from ghosttalk.media.aiortc_adapter import dtls, endpoints, ice, negotiation, rtcp
from tests.support.eventually import eventually
from tests.support.server import ServerProcess


def test_pinned_versions_are_installed() -> None:
    assert aiortc.__version__ == aiortc_adapter.PINNED_AIORTC
    assert aioice.__version__ == aiortc_adapter.PINNED_AIOICE
    assert pylibsrtp.__version__ == aiortc_adapter.PINNED_PYLIBSRTP
    aiortc_adapter.check_pinned_versions()


def test_the_private_hooks_still_exist_with_the_expected_shape() -> None:
    # ICE: the gathering method we replace per connection, and what our stand-in relies on.
    parameters = list(inspect.signature(Connection.get_component_candidates).parameters)
    assert parameters[:3] == ["self", "component", "addresses"]
    assert "_protocols" in inspect.getsource(Connection.__init__)
    assert "_nominated" in inspect.getsource(Connection.__init__)
    # Checks at once (ice.check_at_once): connect() paces checks through the per-instance-overridable
    # _check_periodic, on the check list's pairs, each started by check_start_task.
    assert "if not self._check_periodic():" in inspect.getsource(Connection.connect)
    assert "self._check_list" in inspect.getsource(Connection.__init__)
    assert list(inspect.signature(Connection.check_start_task).parameters) == ["self", "pair"]
    assert {"FROZEN", "WAITING"} <= set(CandidatePair.State.__members__)
    assert {"datagram_received", "send_stun", "close"} <= set(vars(StunProtocol))
    assert "data_received" in vars(Connection)
    # Receive path: the per-instance hook, the SRTP sessions and the statistics class we feed.
    assert list(inspect.signature(RTCDtlsTransport._handle_rtp_data).parameters) == ["self", "data", "arrival_time_ms"]
    assert "await self._handle_rtp_data(" in inspect.getsource(RTCDtlsTransport._recv_next)
    init = inspect.getsource(RTCDtlsTransport.__init__)
    assert "self._rx_srtp" in init and "self._tx_srtp" in init
    assert "def add(self, packet" in inspect.getsource(StreamStatistics)
    # Send path: the counters behind sender reports, the msid fields and the negotiated codecs.
    sender_init = inspect.getsource(RTCRtpSender.__init__)
    for name in ("__packet_count", "__octet_count", "__rtp_timestamp", "__ntp_timestamp", "_stream_id", "_ssrc"):
        assert f"self.{name}" in sender_init, name
    assert "self._track_id" in inspect.getsource(RTCRtpSender.replaceTrack)
    assert "self._codecs" in inspect.getsource(RTCRtpTransceiver.__init__)
    assert "self._headerExtensions" in inspect.getsource(RTCRtpTransceiver.__init__)
    # Re-offers: createOffer resets codecs from the module-level defaults and never awaits (so a swap around
    # the call is atomic).
    offer_source = inspect.getsource(RTCPeerConnection.createOffer)
    assert "CODECS[transceiver.kind]" in offer_source and "HEADER_EXTENSIONS[transceiver.kind]" in offer_source
    assert "await" not in offer_source.split('"""')[-1]
    # Loops (skip_loops): send() starts self._run_rtp(codec) and self._run_rtcp(), receive() the latter; stop()
    # waits on their start/exit events and cancels the tasks. Nothing else waits on those events.
    for endpoint in (RTCRtpSender, RTCRtpReceiver):
        starter = inspect.getsource(endpoint.send if endpoint is RTCRtpSender else endpoint.receive)
        assert "asyncio.ensure_future(self._run_rtcp())" in starter
        stop = inspect.getsource(endpoint.stop)
        assert "self.__rtcp_started.wait()" in stop and "self.__rtcp_exited.wait()" in stop
        assert inspect.getsource(endpoint).count("_started.wait()") == (2 if endpoint is RTCRtpSender else 1)
    assert "asyncio.ensure_future(self._run_rtp(parameters.codecs[0]))" in inspect.getsource(RTCRtpSender.send)
    sender_stop = inspect.getsource(RTCRtpSender.stop)
    assert "self.__rtp_started.wait()" in sender_stop and "self.__rtp_exited.wait()" in sender_stop
    # The CNAME a connection's SDP carries, and the receiver's own report fields.
    assert "self.__cname =" in inspect.getsource(RTCPeerConnection.__init__)
    statistics_source = inspect.getsource(StreamStatistics)
    for name in ("def fraction_lost", "def packets_lost", "self.max_seq", "def jitter"):
        assert name in statistics_source, name
    # DTLS identity: one certificate list per connection, handed to each DTLS transport, whose context comes
    # from the certificate's _create_ssl_context.
    assert "self.__certificates = [RTCCertificate.generateCertificate()]" in inspect.getsource(
        RTCPeerConnection.__init__
    )
    assert "RTCDtlsTransport(iceTransport, self.__certificates)" in inspect.getsource(RTCPeerConnection)
    assert "._create_ssl_context(" in inspect.getsource(RTCDtlsTransport.start)
    # Decoder thread: started by receive(), stopped (and joined) by the private __stop_decoder.
    assert "self.__decoder_thread.start()" in inspect.getsource(RTCRtpReceiver.receive)
    assert "_RTCRtpReceiver__stop_decoder" in vars(RTCRtpReceiver)
    # What release_unused_receiver and skip_decoder_thread free: made in __init__, used by receive() and
    # stop() only once started, by __stop_decoder only while the thread runs, and by the RTP handler tap_rtp
    # replaces. The certificate's fingerprints, which _ReusableCertificate computes once.
    receiver_init = inspect.getsource(RTCRtpReceiver.__init__)
    for name in ("__decoder_queue", "__decoder_error", "__rtcp_started", "__rtcp_exited", "__started = False"):
        assert f"self.{name}" in receiver_init, name
    assert "        if self.__started:\n" in inspect.getsource(RTCRtpReceiver.stop)
    assert "if self.__decoder_thread:\n            self.__decoder_queue.put(None)" in inspect.getsource(
        vars(RTCRtpReceiver)["_RTCRtpReceiver__stop_decoder"]
    )
    assert "self.__decoder_error.is_set()" in inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    assert "await receiver._handle_rtp_packet(" in inspect.getsource(RTCDtlsTransport._handle_rtp_data)
    assert "self.__local_certificate.getFingerprints()" in inspect.getsource(RTCDtlsTransport.getLocalParameters)
    # The peer connection's ICE transports and where it gathers.
    assert "self.__iceTransports" in inspect.getsource(RTCPeerConnection.__init__)
    assert "await self.__gather()" in inspect.getsource(RTCPeerConnection.setLocalDescription)
    # DTLS role (keep_dtls_roles): _role is set only through _set_role, which descriptions call per m-section,
    # and read when the handshake starts, for the SRTP keys, for SCTP stream ids and for an answer's a=setup.
    assert list(inspect.signature(RTCDtlsTransport._set_role).parameters) == ["self", "role"]
    assert 'self._role = "auto"' in inspect.getsource(RTCDtlsTransport.__init__)
    assert "dtlsTransport._set_role(" in inspect.getsource(RTCPeerConnection.setRemoteDescription)
    assert "transport._set_role(media.dtls.role)" in inspect.getsource(RTCPeerConnection.setLocalDescription)
    assert 'if self._role == "server":' in inspect.getsource(RTCDtlsTransport._setup_srtp)
    assert "media.dtls.role = dtlsTransport._role" in inspect.getsource(RTCPeerConnection.createAnswer)
    assert 'self.transport._role == "server"' in inspect.getsource(RTCSctpTransport)
    role_writers = [
        source
        for source in (inspect.getsource(RTCDtlsTransport), inspect.getsource(RTCPeerConnection))
        if "._role = " in source.replace("self._role = role", "").replace('self._role = "auto"', "")
    ]
    assert role_writers == [], "_role is written somewhere other than _set_role"


async def _exchange(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)
    for pc in (offerer, answerer):
        negotiation.forget_what_aiortc_no_longer_reads(pc)


async def test_connections_renegotiate_after_what_aiortc_no_longer_reads_is_forgotten() -> None:
    # aiortc reads each side's current description only when that side has no pending one (so a current one
    # behind a pending one can go), and only through these two accessors.
    source = inspect.getsource(RTCPeerConnection)
    for side in ("Local", "Remote"):
        accessor = f"return self.__pending{side}Description or self.__current{side}Description"
        assert accessor in source
        reads = re.findall(rf"self\.__current{side}Description(?!\s*(?::[^=\n]*)?=)", source)
        assert len(reads) == 1, reads
    offerer, answerer = RTCPeerConnection(), RTCPeerConnection()
    try:
        offerer.addTransceiver("audio")
        offerer.createDataChannel("heartbeat")
        await _exchange(offerer, answerer)
        kept = [getattr(answerer, name) for name in (negotiation._PENDING_REMOTE, negotiation._CURRENT_REMOTE)]
        lines = [media for description in kept if description is not None for media in description.media]
        assert len(lines) == 2
        assert not any(media.ice_candidates or media.rtp.codecs or media.rtp.headerExtensions for media in lines)
        # Each side offers a new line afterwards; both connect, and every line keeps the codecs it agreed.
        for first, second in ((answerer, offerer), (offerer, answerer)):
            first.addTransceiver("audio")
            await _exchange(first, second)
        await eventually(
            lambda: (offerer.connectionState, answerer.connectionState), 10, what="both connected",
            until=lambda states: states == ("connected", "connected"),
        )  # fmt: skip
        for pc in (offerer, answerer):
            # Behind each pending description, the current one of that side is gone.
            for pending, current in (
                (negotiation._PENDING_LOCAL, negotiation._CURRENT_LOCAL),
                (negotiation._PENDING_REMOTE, negotiation._CURRENT_REMOTE),
            ):
                assert getattr(pc, pending) is None or getattr(pc, current) is None
            assert len(pc.getTransceivers()) == 3
            assert all(t._codecs and t._codecs[0].mimeType == "audio/opus" for t in pc.getTransceivers())
    finally:
        await offerer.close()
        await answerer.close()


async def test_a_fresh_connection_exposes_what_the_adapter_reads() -> None:
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("audio")
        transport = transceiver.receiver.transport
        assert ice._ice_transports(pc) == {transport.transport}
        assert dtls.srtp_sessions(transport) is None
        assert ice.selected_remote_address(transport) is None
        dtls.tap_rtp(transport, lambda data: None)
        assert "_handle_rtp_data" in vars(transport)
        statistics = rtcp.ReceiverStatistics(48000)
        statistics.add(1234, 10, 960)
        rtcp.update_sender_report(transceiver.sender, 3, 30, 99, 7)
        assert transceiver.sender._RTCRtpSender__packet_count == 3
        statistics.sender_report(1234, 0x0001000200030004)
        statistics.sender_report(999, 0x0001000200030004)  # a source we never heard: not reported on
        (block,) = statistics.report_blocks()
        assert (block.ssrc, block.lsr, block.highest_sequence) == (1234, 0x00020003, 10)
        for ssrc in range(100):  # a peer cycling SSRCs: bounded, newest kept
            statistics.add(ssrc, 1, 960)
        assert [b.ssrc for b in statistics.report_blocks()] == list(range(100))[-rtcp.MAX_REPORTED_SOURCES :]
        offer = await pc.createOffer()
        assert f"cname:{negotiation.connection_cname(pc)}" in offer.sdp
    finally:
        await pc.close()


async def test_shared_identity_and_no_decoder_thread_on_a_real_connection() -> None:
    """Two aiortc connections on loopback: the side with the shared identity presents its fingerprint, shares
    one OpenSSL context between connections, and keeps no decoder thread once its receiver has started."""
    identity = dtls.SharedDtlsIdentity()
    pairs = [(RTCPeerConnection(), RTCPeerConnection()) for _ in range(2)]
    try:
        for server, client in pairs:
            identity.apply(server)
            client.addTransceiver("audio", direction="sendrecv")
            await client.setLocalDescription(await client.createOffer())
            await server.setRemoteDescription(client.localDescription)
            receiver = server.getTransceivers()[0].receiver
            endpoints.skip_decoder_thread(receiver)
            endpoints.skip_loops(receiver)
            await server.setLocalDescription(await server.createAnswer())
            await client.setRemoteDescription(server.localDescription)
            fingerprint = identity.certificate().getFingerprints()[0].value
            assert fingerprint in server.localDescription.sdp
            # A forwarding line, offered once connected: its receiver never starts.
            forwarding = server.addTransceiver("audio", direction="sendonly")
            endpoints.skip_loops(forwarding.sender)
            endpoints.release_unused_receiver(forwarding.receiver)
        for server, client in pairs:
            await eventually(
                lambda s=server, c=client: (s.connectionState, c.connectionState), 5, what="both ends connected",
                until=lambda states: states == ("connected", "connected"),
            )
        contexts = {id(server.getTransceivers()[0].receiver.transport._ssl.get_context()) for server, _ in pairs}
        assert len(contexts) == 1
        await eventually(
            lambda: all(s.getTransceivers()[0].receiver._RTCRtpReceiver__decoder_thread is None for s, _ in pairs),
            1, what="no decoder thread on any connection", interval=0.02,
        )
        for server, client in pairs:
            await server.setLocalDescription(await server.createOffer())
            await client.setRemoteDescription(server.localDescription)
            await client.setLocalDescription(await client.createAnswer())
            await server.setRemoteDescription(client.localDescription)
            inbound, forwarding = server.getTransceivers()
            assert forwarding.currentDirection == "sendonly"
            for receiver in (inbound.receiver, forwarding.receiver):
                assert receiver._RTCRtpReceiver__decoder_queue is None
                assert receiver._RTCRtpReceiver__decoder_error is None
            assert forwarding.receiver._RTCRtpReceiver__rtcp_started is None
            await server.getStats()
        # The skipped loops have ended (aiortc started them once the new line connected): nothing waits.
        def skipped_loops() -> list[Any]:
            return [
                task
                for inbound, forwarding in (server.getTransceivers() for server, _ in pairs)
                for task in (inbound.receiver._RTCRtpReceiver__rtcp_task, forwarding.sender._RTCRtpSender__rtp_task)
            ]

        await eventually(
            skipped_loops, 1, what="the skipped loops ended",
            until=lambda tasks: all(t is not None and t.done() for t in tasks),
        )
        # Computed once, handed out as a fresh list: aiortc's own SHA-256 fingerprint, which alone is offered
        # (and with which the connections above were verified).
        certificate = identity.certificate()
        assert certificate.getFingerprints() is not certificate.getFingerprints()
        own = [f for f in RTCCertificate.getFingerprints(certificate) if f.algorithm == "sha-256"]
        assert certificate.getFingerprints() == own
        assert server.localDescription.sdp.count("a=fingerprint:") == len(server.getTransceivers())
    finally:
        for server, client in pairs:
            await server.close()
            await client.close()


async def test_a_pinned_dtls_role_outlives_answers_that_claim_the_other() -> None:
    """keep_dtls_roles on a real pair: the answerer's role (client) stays through a re-answer that says
    ``active`` on every section (as Pion writes it), and the next answer it writes still says so."""
    browser = RTCPeerConnection()
    server = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    try:
        browser.addTransceiver("audio", direction="sendrecv")
        await browser.setLocalDescription(await browser.createOffer())
        await server.setRemoteDescription(browser.localDescription)
        await server.setLocalDescription(await server.createAnswer())
        dtls.keep_dtls_roles(server)
        await browser.setRemoteDescription(server.localDescription)
        transport = server.getTransceivers()[0].receiver.transport
        assert transport._role == "client"
        server.createDataChannel("heartbeat")
        await server.setLocalDescription(await server.createOffer())
        await browser.setRemoteDescription(server.localDescription)
        await browser.setLocalDescription(await browser.createAnswer())
        claimed = browser.localDescription.sdp.replace("a=setup:passive", "a=setup:active")
        await server.setRemoteDescription(RTCSessionDescription(claimed, "answer"))
        assert server.sctp is not None and server.sctp.transport is transport
        assert transport._role == "client"
        dtls.keep_dtls_roles(server)  # idempotent
        await browser.setLocalDescription(await browser.createOffer())
        await server.setRemoteDescription(browser.localDescription)
        answer = await server.createAnswer()
        assert {line for line in answer.sdp.splitlines() if line.startswith("a=setup:")} == {"a=setup:active"}
    finally:
        await browser.close()
        await server.close()


STANDIN_PROBE = """
import asyncio, sys
from ghosttalk.media.pyav_standin import (
    PyAVUnavailable, keep_mdns_out, keep_pyav_out, mdns_is_stood_in, pyav_is_stood_in,
)
assert keep_pyav_out() and keep_mdns_out()
import ghosttalk.server.process  # everything the server imports, aiortc included
from aiortc import RTCPeerConnection

async def negotiate() -> None:
    offerer, answerer = RTCPeerConnection(), RTCPeerConnection()
    offerer.addTransceiver("audio")
    offerer.createDataChannel("heartbeat")
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)
    for _ in range(100):
        if offerer.connectionState == answerer.connectionState == "connected":
            break
        await asyncio.sleep(0.05)
    assert offerer.connectionState == answerer.connectionState == "connected"
    await offerer.close()
    await answerer.close()

asyncio.run(negotiate())
assert pyav_is_stood_in() and mdns_is_stood_in()
assert "dns" not in sys.modules  # aioice's resolver would have brought dnspython
import av
try:
    av.AudioFrame()
except PyAVUnavailable as exc:
    assert "does not load PyAV" in str(exc)
else:
    raise AssertionError("a PyAV placeholder could be instantiated")
print("ffmpeg mapped:", any("libavcodec" in line for line in open("/proc/self/maps")))
"""


def test_the_mdns_stand_in_has_every_name_aioice_uses() -> None:
    """aioice.ice reads these three names of aioice.mdns (ghosttalk.media.pyav_standin stands in for them)."""
    used = set(re.findall(r"\bmdns\.(\w+)", inspect.getsource(aioice.ice)))
    assert used == {"MDnsProtocol", "create_mdns_protocol", "is_mdns_hostname"}
    assert "from . import mdns" in inspect.getsource(aioice.ice)


def test_aiortc_imports_and_connects_with_pyav_stood_in() -> None:
    """The server's stand-in for PyAV covers everything aiortc evaluates at import and while negotiating and
    connecting; a new aiortc that needs more fails here."""
    result = subprocess.run([sys.executable, "-c", STANDIN_PROBE], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "ffmpeg mapped: False" in result.stdout


def test_the_running_server_has_no_ffmpeg_loaded(shared_server: ServerProcess) -> None:
    with open(f"/proc/{shared_server.pid}/maps") as maps:
        mapped = maps.read()
    assert "ghosttalk" in mapped or "python" in mapped  # the right process
    assert "libavcodec" not in mapped and "/av/" not in mapped


def test_the_shared_socket_hooks_still_exist_with_the_expected_shape() -> None:
    """What ghosttalk.media.aiortc_adapter.ice relies on to parse and authenticate STUN itself, route responses
    by transaction, send through the guarded socket and guard aiortc's DTLS receive."""
    # StunProtocol: the transactions table, request() as the one way a check is sent, send_data for DTLS.
    assert "self.transactions" in inspect.getsource(StunProtocol.__init__)
    assert list(inspect.signature(StunProtocol.request).parameters) == [
        "self",
        "request",
        "addr",
        "integrity_key",
        "retransmissions",
    ]
    assert {"request", "send_data", "send_stun"} <= set(vars(StunProtocol))
    # Connection: what handle_stun calls and what the mux checks requests against.
    assert list(inspect.signature(Connection.request_received).parameters) == ["self", "message", "addr", "protocol"]
    assert "self.remote_username" in inspect.getsource(Connection.__init__)
    assert isinstance(Connection.local_password, property)
    # aiortc's receive loop looks _recv_next up on the instance for every datagram (guard_dtls_receive).
    assert "await self._recv_next()" in inspect.getsource(RTCDtlsTransport._RTCDtlsTransport__run)  # type: ignore[attr-defined]
    assert ice.DTLS_ERRORS_IN_A_ROW > 0
