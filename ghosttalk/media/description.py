"""What a client's offer or answer must be before it touches a connection.

Everything here is checked or cleaned before aiortc sees the text, so that bad input gets a clear error and
leaves no trace on the connection it was meant for.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from aiortc.sdp import SessionDescription

from ghosttalk.config import IPAddress
from ghosttalk.contract import SignalingError

# Remote candidates one connection may have checked (trickled and in descriptions together, each transport
# address once): a browser sends a handful to a dozen or so, one per interface, STUN and TURN server.
MAX_CANDIDATES = 32
# Candidate types of RFC 8445 section 5.1.1.
_CANDIDATE_TYPES = frozenset({"host", "srflx", "prflx", "relay"})
_QUOTED_CHARS = 80
# Dropped from every client description, as a trickled end of candidates is ignored: once it has seen it,
# aioice gives up on a component without remote candidates, and stops gathering and answering for it. An
# offer whose candidates were all dropped (mDNS, a public client's LAN addresses) would then never connect,
# though the client's own checks would have taught us a peer-reflexive address.
_END_OF_CANDIDATES = "a=end-of-candidates"


def is_mdns_candidate(line: str) -> bool:
    """Whether an SDP ``candidate`` value hides its address behind an mDNS ``.local`` name."""
    fields = line.split()
    return len(fields) > 4 and fields[4].lower().endswith(".local")


def _quoted(line: str) -> str:
    return repr(line if len(line) <= _QUOTED_CHARS else line[:_QUOTED_CHARS] + "...")


def _is_integer(text: str) -> bool:
    """What ``int()`` reads without a surprise: isdigit() admits "²", and Python refuses to convert more than
    4,300 digits (a ``ValueError`` where we expect none)."""
    return len(text) <= 20 and text.removeprefix("-").isdecimal()


def _ip_or_none(text: str) -> IPAddress | None:
    try:
        return _normalised(ipaddress.ip_address(text))
    except ValueError:
        return None


def _normalised(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address is the IPv4 address it maps (``::ffff:10.0.0.1`` is private, not reserved)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_unicast(address: IPAddress) -> bool:
    """Not unspecified, multicast, broadcast or reserved. (Python counts all of ``::/8`` as reserved, IPv6
    loopback and the global NAT64 prefix ``64:ff9b::/96`` included; those are ordinary unicast addresses.)"""
    if address.is_unspecified or address.is_multicast:
        return False
    return not address.is_reserved or address.is_loopback or address.is_global


@dataclass(slots=True, frozen=True)
class RemoteCandidate:
    """The fields of an SDP ``candidate`` value (RFC 8839 section 5.1) that decide where checks would go."""

    transport: str
    address: IPAddress
    port: int
    type: str

    @classmethod
    def parse(cls, line: str) -> RemoteCandidate:
        """Raises :class:`SignalingError` naming the line for anything aioice could choke on or be misled by:
        a port it would hand to ``sendto`` (70000 makes plain asyncio close the shared socket), a host name it
        would resolve, numbers out of range."""
        fields = line.split()
        if len(fields) < 8 or fields[6] != "typ":
            raise SignalingError(f"candidate {_quoted(line)} does not parse")
        _foundation, component, transport, priority, host, port, _typ, kind = fields[:8]
        if not all(_is_integer(field) for field in (component, priority, port)):
            raise SignalingError(f"candidate {_quoted(line)} does not parse: component, priority and port are numbers")
        if not 1 <= int(component) <= 256 or not 1 <= int(priority) < 2**32:
            raise SignalingError(f"candidate {_quoted(line)} refused: component or priority out of range")
        if not 1 <= int(port) <= 65535:
            raise SignalingError(f"candidate {_quoted(line)} refused: port {int(port)} is not 1-65535")
        extensions = dict(zip(fields[8::2], fields[9::2], strict=False))
        if not all(_is_integer(extensions.get(name, "0")) for name in ("rport", "generation")):
            raise SignalingError(f"candidate {_quoted(line)} does not parse: rport and generation are numbers")
        if kind not in _CANDIDATE_TYPES:
            raise SignalingError(f"candidate {_quoted(line)} refused: unknown type {kind!r}")
        try:
            address = _normalised(ipaddress.ip_address(host))
        except ValueError:
            raise SignalingError(f"candidate {_quoted(line)} refused: {host!r} is not an IP address") from None
        return cls(transport.lower(), address, int(port), kind)


class Admission(Enum):
    """What becomes of a well-formed candidate."""

    CHECK = "check"  # handed to aioice, which sends connectivity checks to it
    # Dropped without an error: valid, but no address the server should send to (the client still connects
    # through its other candidates or through the peer-reflexive address its own checks reveal).
    MDNS = "mdns"
    NOT_UDP = "not_udp"
    NOT_PUBLIC = "not_public"
    OVER_LIMIT = "over_limit"
    DUPLICATE = "duplicate"


class CandidateFilter:
    """Which remote candidates one connection sends connectivity checks to (docs/RELIABILITY.md, "Where
    connectivity checks go"). Invalid candidates are refused with an error naming them (a trickled one
    raises, one inside a description is removed from it and reported through ``refused``, so that the rest of
    the negotiation goes on); well-formed ones the server should not probe are dropped and counted through
    ``dropped``; at most ``limit`` distinct addresses are ever checked.

    An address in a non-global range (private, loopback, link-local, CGNAT, ULA, documentation) is checked
    only for a client whose own signaling address is non-global too: a client on the public Internet cannot
    be reached at a LAN address, and checking one would make the server probe its *own* network. Relay
    candidates get no exception: a TURN relay on the operator's private network shows up in the client's
    checks anyway, and is learnt from them as a peer-reflexive address.
    """

    def __init__(
        self,
        client_ip: str,
        own_endpoints: Iterable[tuple[str, int]],
        *,
        dropped: Callable[[Admission], None],
        refused: Callable[[str], None],
        limit: int = MAX_CANDIDATES,
    ) -> None:
        client = _ip_or_none(client_ip)
        # No IP peer (a Unix socket) is treated as a public client, the stricter case.
        self.client_is_global = client is None or client.is_global
        self._own = {(address, port) for host, port in own_endpoints if (address := _ip_or_none(host)) is not None}
        self._dropped = dropped
        self._refused = refused
        self._limit = limit
        self._checked: set[tuple[IPAddress, int]] = set()

    def admit(self, line: str) -> tuple[Admission, RemoteCandidate | None]:
        """Decide on one ``candidate`` value (without its ``candidate:`` prefix). Raises :class:`SignalingError`."""
        if is_mdns_candidate(line):
            # An mDNS name hides a LAN address; we cannot resolve names on someone else's LAN (and must not
            # multicast from a public server). The client's checks teach us the real address as prflx.
            return self._counted(Admission.MDNS), None
        candidate = RemoteCandidate.parse(line)
        if candidate.transport != "udp":
            # Our one socket speaks UDP only. (Browsers list TCP candidates with the discard port 9.)
            return self._counted(Admission.NOT_UDP), candidate
        address, port = candidate.address, candidate.port
        if not _is_unicast(address):
            raise SignalingError(f"candidate {_quoted(line)} refused: {address} is not a unicast address")
        if port < 1024:
            raise SignalingError(f"candidate {_quoted(line)} refused: port {port} is privileged")
        if (address, port) in self._own or (address.is_loopback and any(p == port for _, p in self._own)):
            raise SignalingError(f"candidate {_quoted(line)} refused: it is the server's own address")
        if self.client_is_global and not address.is_global:
            return self._counted(Admission.NOT_PUBLIC), candidate
        if (address, port) in self._checked:
            return Admission.DUPLICATE, candidate  # repeated in every answer to our offers: not a new one
        if len(self._checked) >= self._limit:
            return self._counted(Admission.OVER_LIMIT), candidate
        self._checked.add((address, port))
        return Admission.CHECK, candidate

    def over_limit(self) -> SignalingError:
        """What a client is told for a candidate past the limit (trickled or in a description)."""
        return SignalingError(f"too many candidates: at most {self._limit} per connection are checked")

    def _counted(self, admission: Admission) -> Admission:
        self._dropped(admission)
        return admission

    def filter_description(self, sdp: str) -> str:
        """The description with only the ``a=candidate`` lines to check (duplicates of checked ones included:
        answers repeat them, aioice ignores them), and without ``a=end-of-candidates``."""
        lines = sdp.splitlines(keepends=True)
        kept = [
            line
            for line in lines
            if not line.startswith(_END_OF_CANDIDATES)
            and (not line.startswith("a=candidate:") or self._keeps(line))
        ]
        return sdp if len(kept) == len(lines) else "".join(kept)

    def _keeps(self, line: str) -> bool:
        try:
            admission, _ = self.admit(line[len("a=candidate:") :].strip())
        except SignalingError as exc:
            self._refused(str(exc))
            return False
        if admission is Admission.OVER_LIMIT:
            self._refused(str(self.over_limit()))
        return admission in (Admission.CHECK, Admission.DUPLICATE)


# What an answer may make of each direction we offered (RFC 3264, section 6.1).
_ANSWERABLE = {
    "sendrecv": frozenset({"sendrecv", "sendonly", "recvonly", "inactive"}),
    "sendonly": frozenset({"recvonly", "inactive"}),
    "recvonly": frozenset({"sendonly", "inactive"}),
    "inactive": frozenset({"inactive"}),
}


def check_answer_directions(offered: Mapping[str, str], answer: SessionDescription) -> None:
    """aiortc takes an answer's direction as it comes: a forwarding line we offered ``sendonly`` answered
    ``sendrecv`` would start a receiver (and its decoder thread) that nothing should ever feed. ``offered``:
    mid -> the direction our offer gave each audio line."""
    for media in answer.media:
        direction = offered.get(media.rtp.muxId) if media.kind == "audio" else None
        if direction is not None and media.direction not in _ANSWERABLE[direction]:
            raise SignalingError(
                f"answer makes audio line {media.rtp.muxId!r} {media.direction}, but it was offered {direction}"
            )


def parse_description(
    sdp: str, kind: str, candidates: CandidateFilter, max_media: int | None = None
) -> tuple[str, SessionDescription]:
    """Check an offer or answer (whose message the contract has checked) before it touches the connection, so
    bad input leaves no trace; the text to apply and what it says. ``candidates`` decides on its
    ``a=candidate`` lines; more than ``max_media`` m-lines are refused before anything is parsed."""
    if max_media is not None:
        lines = sdp.count("\nm=") + sdp.startswith("m=")
        if lines > max_media:
            raise SignalingError(f"{kind} SDP has {lines} m-lines; at most {max_media} are possible here")
    sdp = candidates.filter_description(sdp)
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


def check_offer_lines(
    offer: SessionDescription, known: Mapping[str, str], voice_mid: str | None, receive_lines: int = 0
) -> None:
    """A client's offer may carry the m-lines the connection already has (``known``: mid -> kind) and, new,
    one audio line (its voice, in the first offer only), after it up to ``receive_lines`` audio lines that
    only receive and offer Opus (the first offer's lines for the room's speakers, see ``room_state``: the
    server sends on them) and one data channel line. aiortc makes a receiving transceiver, with a decoder
    thread, for every new audio or video line, so anything more is refused before it is applied. Our
    forwarding lines must stay receive-only or inactive on the client's side: the server never receives on
    them."""
    seen: set[str] = set()
    new_kinds: list[str] = []
    for index, media in enumerate(offer.media):
        mid = media.rtp.muxId
        if not mid:
            raise SignalingError(f"offer m-line {index} ({media.kind}) has no a=mid")
        if mid in seen:
            raise SignalingError(f"offer has two m-lines with a=mid:{mid}")
        seen.add(mid)
        kind = known.get(mid)
        if kind is None:
            if media.kind == "audio" and voice_mid is None and "audio" in new_kinds and receive_lines > 0:
                if media.direction not in ("recvonly", "inactive"):
                    raise SignalingError(
                        f"offer adds audio line {mid!r} {media.direction}: besides its voice, the first offer's "
                        "audio lines only receive"
                    )
                if not any(codec.mimeType.lower() == "audio/opus" for codec in media.rtp.codecs):
                    raise SignalingError(f"offer's receive line {mid!r} has no Opus: GhostTalk relays Opus only")
                receive_lines -= 1
                continue
            allowed = (media.kind == "audio" and voice_mid is None) or (
                media.kind == "application" and "application" not in known.values()
            )
            if not allowed or media.kind in new_kinds:
                raise SignalingError(
                    f"offer adds {media.kind} line {mid!r}: a connection has one audio line (the first offer's) "
                    "and one data channel line, besides the lines the server offers"
                )
            new_kinds.append(media.kind)
        elif media.kind != kind:
            raise SignalingError(f"offer makes {kind} line {mid!r} a {media.kind} line")
        elif kind == "audio" and mid != voice_mid and media.direction not in ("recvonly", "inactive"):
            raise SignalingError(
                f"offer makes audio line {mid!r} {media.direction}, but the server only sends on it"
            )
