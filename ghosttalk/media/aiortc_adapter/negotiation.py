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


def keep_codec(transceiver: RTCRtpTransceiver, mime_type: str) -> None:
    """Leave only ``mime_type`` (lower case) among the codecs negotiated on ``transceiver``: what the answer to
    the offer that made it will list."""
    transceiver._codecs = [codec for codec in transceiver._codecs if codec.mimeType.lower() == mime_type]


def negotiated_payload_type(transceiver: RTCRtpTransceiver) -> int | None:
    codecs = transceiver._codecs
    return codecs[0].payloadType if codecs else None


def received_payload_types(transceiver: RTCRtpTransceiver) -> frozenset[int]:
    return frozenset(codec.payloadType for codec in transceiver._codecs if codec.payloadType is not None)


def header_extension_id(transceiver: RTCRtpTransceiver, uri: str) -> int:
    """The id the last negotiation gave the header extension ``uri`` on this line; 0 if it was not agreed."""
    return next((extension.id for extension in transceiver._headerExtensions if extension.uri == uri), 0)


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



_PENDING_LOCAL = "_RTCPeerConnection__pendingLocalDescription"
_CURRENT_LOCAL = "_RTCPeerConnection__currentLocalDescription"
_PENDING_REMOTE = "_RTCPeerConnection__pendingRemoteDescription"
_CURRENT_REMOTE = "_RTCPeerConnection__currentRemoteDescription"


def forget_what_aiortc_no_longer_reads(pc: RTCPeerConnection) -> None:
    """Once an exchange has completed, let go of what aiortc keeps of the descriptions but never reads again.

    aiortc keeps up to four parsed descriptions per connection (a pending and a current one each side) and
    only ever reads the pending one of a side if there is one, else the current one: a current description
    behind a pending one can never be read again (our first answer, once we have made an offer), so it goes.
    Of the client's descriptions that stay, the parts aiortc has applied go: the candidates (handed to ICE
    as each description was set) and every m-line's codecs and header extensions (the transceivers hold the
    agreed ones); it reads only each m-line's kind, mid, SSRCs, RTCP and transport parameters again. A
    browser lists about ten codecs and four extensions on every line, so a connection hearing nine people
    kept some 40 kB of them. No-op unless ``pc`` is stable (a pending offer is still to be answered)."""
    if pc.signalingState != "stable":
        return
    for pending, current in ((_PENDING_LOCAL, _CURRENT_LOCAL), (_PENDING_REMOTE, _CURRENT_REMOTE)):
        if getattr(pc, pending) is not None:
            setattr(pc, current, None)
    for name in (_PENDING_REMOTE, _CURRENT_REMOTE):
        description = getattr(pc, name)
        if description is None:
            continue
        for media in description.media:
            # New lists, never cleared ones: the objects they held may be shared with a transceiver.
            media.ice_candidates = []
            media.rtp.codecs = []
            media.rtp.headerExtensions = []
