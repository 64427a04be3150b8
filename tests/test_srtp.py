"""The forwarder's direct libsrtp calls (ghosttalk.media.aiortc_adapter.srtp) behave like pylibsrtp's methods."""

from __future__ import annotations

import os

import pylibsrtp
import pytest
from aiortc.rtp import RtcpSenderInfo, RtcpSrPacket
from pylibsrtp import Policy, Session

from ghosttalk.media.aiortc_adapter.srtp import fast_transform
from ghosttalk.media.rtp import build_rtp

KEY = bytes(range(30))


def sender() -> Session:
    return Session(Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_OUTBOUND))


def receiver() -> Session:
    return Session(Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_INBOUND))


def packets(count: int) -> list[bytes]:
    return [build_rtp(i % 2, 111, (65530 + i) & 0xFFFF, 960 * i, 0xCAFE, os.urandom(20 + i)) for i in range(count)]


def test_protect_gives_the_same_bytes_as_pylibsrtp_across_a_sequence_rollover() -> None:
    plain = packets(20)
    reference, fast = sender(), sender()
    protect = fast_transform(fast.protect)
    assert protect is not fast.protect, "the direct path is in use with the installed pylibsrtp"
    assert [protect(p) for p in plain] == [reference.protect(p) for p in plain]


def test_unprotect_round_trips_and_rejects_what_pylibsrtp_rejects() -> None:
    plain = packets(5)
    protect = fast_transform(sender().protect)
    unprotect = fast_transform(receiver().unprotect)
    protected = [protect(p) for p in plain]
    assert [unprotect(p) for p in protected] == plain
    with pytest.raises(pylibsrtp.Error):
        unprotect(protected[-1])  # a replay
    tampered = bytearray(protect(build_rtp(0, 111, 7, 0, 0xCAFE, b"x" * 40)))
    tampered[20] ^= 1
    with pytest.raises(pylibsrtp.Error):
        unprotect(bytes(tampered))
    with pytest.raises(ValueError):
        protect(b"\x80" * 1500)


def test_unprotect_rtcp_gives_what_pylibsrtp_gives() -> None:
    reports = [
        bytes(RtcpSrPacket(ssrc=0xCAFE, sender_info=RtcpSenderInfo(i << 32, 960 * i, i, 80 * i))) for i in range(5)
    ]
    protect_rtcp = sender().protect_rtcp
    protected = [protect_rtcp(r) for r in reports]
    reference, fast = receiver(), receiver()
    unprotect = fast_transform(fast.unprotect_rtcp)
    assert unprotect is not fast.unprotect_rtcp
    assert [unprotect(p) for p in protected] == [reference.unprotect_rtcp(p) for p in protected] == reports
    with pytest.raises(pylibsrtp.Error):
        unprotect(protected[-1])  # a replay


def test_anything_else_is_used_as_it_is() -> None:
    def identity(packet: bytes) -> bytes:
        return packet

    assert fast_transform(identity) is identity
    session = sender()
    assert fast_transform(session.protect_rtcp) == session.protect_rtcp
