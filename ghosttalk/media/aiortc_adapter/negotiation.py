"""What a connection negotiated, and offers that keep it.

``RTCPeerConnection.createOffer`` resets every transceiver to aiortc's default payload types and
header-extension ids. A browser that offered first negotiated its own (Opus 111, ``ssrc-audio-level`` on
id 1, ...) and refuses an offer that renumbers them, or a BUNDLE group whose m-lines disagree, so our offers
reuse what the first negotiation settled, on every audio m-line.
"""

from __future__ import annotations

from aiortc import RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver, RTCSessionDescription, rtcpeerconnection


async def create_offer_keeping_negotiated(pc: RTCPeerConnection, reference: RTCRtpTransceiver) -> RTCSessionDescription:
    """``pc.createOffer()`` with ``reference``'s negotiated codecs and header extensions on every audio
    m-line. createOffer reads the module-level defaults and never awaits, so swapping them around the call
    cannot leak into any other connection."""
    module = vars(rtcpeerconnection)
    codecs, extensions = module["CODECS"], module["HEADER_EXTENSIONS"]
    module["CODECS"] = {**codecs, "audio": list(reference._codecs)}
    module["HEADER_EXTENSIONS"] = {**extensions, "audio": list(reference._headerExtensions)}
    try:
        return await pc.createOffer()
    finally:
        module["CODECS"], module["HEADER_EXTENSIONS"] = codecs, extensions


def negotiated_payload_type(transceiver: RTCRtpTransceiver) -> int | None:
    codecs = transceiver._codecs
    return codecs[0].payloadType if codecs else None


def received_payload_types(transceiver: RTCRtpTransceiver) -> frozenset[int]:
    return frozenset(codec.payloadType for codec in transceiver._codecs if codec.payloadType is not None)


def sender_ssrc(sender: RTCRtpSender) -> int:
    ssrc: int = sender._ssrc
    return ssrc


def set_stream_identity(sender: RTCRtpSender, stream_id: str, track_id: str) -> None:
    """The msid the next SDP announces for this sender: the page maps stream id -> speaker."""
    sender._stream_id = stream_id
    sender._track_id = track_id


def connection_cname(pc: RTCPeerConnection) -> str:
    """The CNAME ``pc`` puts in its SDP (``a=ssrc:... cname:``), which its RTCP must repeat."""
    return str(getattr(pc, "_RTCPeerConnection__cname"))  # noqa: B009 (private)
