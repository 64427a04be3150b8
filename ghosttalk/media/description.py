"""What a client's offer or answer must be before it touches a connection.

Everything here is checked or cleaned before aiortc sees the text, so that bad input gets a clear error and
leaves no trace on the connection it was meant for.
"""

from __future__ import annotations

from aiortc.sdp import SessionDescription


class SignalingError(Exception):
    """A client message that cannot be applied: the client gets ``error {message}``, the session goes on."""


def is_mdns_candidate(line: str) -> bool:
    """Whether an SDP ``candidate`` value hides its address behind an mDNS ``.local`` name."""
    fields = line.split()
    return len(fields) > 4 and fields[4].lower().endswith(".local")


def without_mdns_candidates(sdp: str) -> str:
    """The description without ``a=candidate`` lines naming an mDNS host. aioice would resolve them by
    multicasting from the server (and hold up the negotiation meanwhile); like trickled ones, they are
    dropped, and the browser's connectivity checks teach us the real address anyway."""
    lines = sdp.splitlines(keepends=True)
    kept = [line for line in lines if not (line.startswith("a=candidate:") and is_mdns_candidate(line[12:]))]
    return sdp if len(kept) == len(lines) else "".join(kept)


# What an answer may make of each direction we offered (RFC 3264, section 6.1).
_ANSWERABLE = {
    "sendrecv": frozenset({"sendrecv", "sendonly", "recvonly", "inactive"}),
    "sendonly": frozenset({"recvonly", "inactive"}),
    "recvonly": frozenset({"sendonly", "inactive"}),
    "inactive": frozenset({"inactive"}),
}


def check_answer_directions(offer: SessionDescription, answer: SessionDescription) -> None:
    """aiortc takes an answer's direction as it comes: a forwarding line we offered ``sendonly`` answered
    ``sendrecv`` would start a receiver (and its decoder thread) that nothing should ever feed."""
    offered = {media.rtp.muxId: media.direction for media in offer.media if media.kind == "audio"}
    for media in answer.media:
        direction = offered.get(media.rtp.muxId) if media.kind == "audio" else None
        if direction is not None and media.direction not in _ANSWERABLE[direction]:
            raise SignalingError(
                f"answer makes audio line {media.rtp.muxId!r} {media.direction}, but it was offered {direction}"
            )


def parse_description(sdp: object, kind: str) -> tuple[str, SessionDescription]:
    """Check an offer or answer before it touches the connection, so bad input leaves no trace; the text
    to apply and what it says."""
    if not isinstance(sdp, str) or not sdp.strip():
        raise SignalingError(f"{kind} needs an 'sdp' string")
    sdp = without_mdns_candidates(sdp)
    try:
        description = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises whatever the malformed text provokes
        raise SignalingError(f"{kind} SDP does not parse: {exc.__class__.__name__}") from None
    voice = next((media for media in description.media if media.kind == "audio"), None)
    if voice is None:
        raise SignalingError(f"{kind} SDP has no audio section")
    if kind == "offer" and not any(codec.mimeType.lower() == "audio/opus" for codec in voice.rtp.codecs):
        raise SignalingError("offer SDP has no Opus codec: GhostTalk relays Opus only")
    if any(m.ice is None or m.ice.usernameFragment is None or m.dtls is None for m in description.media):
        raise SignalingError(f"{kind} SDP lacks ICE credentials or a DTLS fingerprint")
    return sdp, description
