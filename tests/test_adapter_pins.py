"""Fails loudly when aiortc/aioice move under the adapter (ghosttalk/media/aiortc_adapter.py)."""

from __future__ import annotations

import inspect

import aioice
import aiortc
from aioice.ice import Connection, StunProtocol
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpreceiver import StreamStatistics

from ghosttalk.media import aiortc_adapter


def test_pinned_versions_are_installed() -> None:
    assert aiortc.__version__ == aiortc_adapter.PINNED_AIORTC
    assert aioice.__version__ == aiortc_adapter.PINNED_AIOICE
    aiortc_adapter.check_pinned_versions()


def test_the_private_hooks_still_exist_with_the_expected_shape() -> None:
    # ICE: the gathering method we replace per connection, and what our stand-in relies on.
    parameters = list(inspect.signature(Connection.get_component_candidates).parameters)
    assert parameters[:3] == ["self", "component", "addresses"]
    assert "_protocols" in inspect.getsource(Connection.__init__)
    assert "_nominated" in inspect.getsource(Connection.__init__)
    assert {"datagram_received", "send_stun", "close"} <= set(vars(StunProtocol))
    assert "data_received" in vars(Connection)
    # Receive path: the per-instance hook, the SRTP sessions and the receiver statistics.
    assert list(inspect.signature(RTCDtlsTransport._handle_rtp_data).parameters) == [
        "self", "data", "arrival_time_ms"
    ]
    assert "await self._handle_rtp_data(" in inspect.getsource(RTCDtlsTransport._recv_next)
    init = inspect.getsource(RTCDtlsTransport.__init__)
    assert "self._rx_srtp" in init and "self._tx_srtp" in init
    assert "self.__remote_streams" in inspect.getsource(RTCRtpReceiver.__init__)
    assert "def add(self, packet" in inspect.getsource(StreamStatistics)
    # Send path: the counters behind sender reports, the msid fields and the negotiated codecs.
    sender_init = inspect.getsource(RTCRtpSender.__init__)
    for name in ("__packet_count", "__octet_count", "__rtp_timestamp", "__ntp_timestamp", "_stream_id", "_ssrc"):
        assert f"self.{name}" in sender_init, name
    assert "self._track_id" in inspect.getsource(RTCRtpSender.replaceTrack)
    assert "self._codecs" in inspect.getsource(RTCRtpTransceiver.__init__)
    # Re-offers: createOffer resets codecs from the module-level defaults and never awaits (so a swap around
    # the call is atomic).
    offer_source = inspect.getsource(RTCPeerConnection.createOffer)
    assert "CODECS[transceiver.kind]" in offer_source and "HEADER_EXTENSIONS[transceiver.kind]" in offer_source
    assert "await" not in offer_source.split('"""')[-1]
    # RTCP loops sleep 0.5 + random.random() with the module's own `random`, which the server stretches.
    for loop in (RTCRtpSender._run_rtcp, RTCRtpReceiver._run_rtcp):
        assert "await asyncio.sleep(0.5 + random.random())" in inspect.getsource(loop)
    # The peer connection's ICE transports and where it gathers.
    assert "self.__iceTransports" in inspect.getsource(RTCPeerConnection.__init__)
    assert "await self.__gather()" in inspect.getsource(RTCPeerConnection.setLocalDescription)


def test_rtcp_interval_is_stretched_to_rfc3550() -> None:
    from aiortc import rtcrtpreceiver, rtcrtpsender

    saved = vars(rtcrtpsender)["random"], vars(rtcrtpreceiver)["random"]
    try:
        aiortc_adapter.use_rfc3550_rtcp_interval()
        aiortc_adapter.use_rfc3550_rtcp_interval()  # idempotent: not 2 + 5 * (2 + 5 * x)
        for module in (rtcrtpsender, rtcrtpreceiver):
            delays = [0.5 + module.random.random() for _ in range(1000)]
            assert min(delays) >= 2.5 and max(delays) <= 7.5
            assert module.random.randint(1, 1) == 1  # everything else is the real module
    finally:
        vars(rtcrtpsender)["random"], vars(rtcrtpreceiver)["random"] = saved


async def test_a_fresh_connection_exposes_what_the_adapter_reads() -> None:
    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("audio")
        dtls = transceiver.receiver.transport
        assert aiortc_adapter._ice_transports(pc) == {dtls.transport}
        assert aiortc_adapter.srtp_sessions(dtls) is None
        assert aiortc_adapter.selected_remote_address(dtls) is None
        aiortc_adapter.tap_rtp(dtls, lambda data: None)
        assert "_handle_rtp_data" in vars(dtls)
        statistics = aiortc_adapter.ReceiverStatistics(transceiver.receiver, 48000)
        statistics.add(1234, 10, 960)
        assert transceiver.receiver._RTCRtpReceiver__remote_streams[1234].packets_received == 1
        aiortc_adapter.update_sender_report(transceiver.sender, 3, 30, 99, 7)
        assert transceiver.sender._RTCRtpSender__packet_count == 3
    finally:
        await pc.close()
