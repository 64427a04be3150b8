"""Which candidates a connection's checks may go to, address by address: the rule the hostile-SDP tests
(test_hostile_sdp.py) drive through a real server, here on ``CandidateFilter`` alone."""

from __future__ import annotations

import pytest

from ghosttalk.contract import SignalingError
from ghosttalk.media.description import Admission, CandidateFilter
from tests.support.rawpeer import host_candidate


def rule(client_ip: str) -> tuple[CandidateFilter, list[Admission], list[str]]:
    dropped: list[Admission] = []
    refused: list[str] = []
    own = [("203.0.113.10", 50000), ("0.0.0.0", 50000)]
    return CandidateFilter(client_ip, own, dropped=dropped.append, refused=refused.append), dropped, refused


@pytest.mark.parametrize(
    ("client_ip", "address", "kind", "expected"),
    [
        ("8.8.8.8", "9.9.9.9", "srflx", Admission.CHECK),
        ("8.8.8.8", "2001:4860::1", "host", Admission.CHECK),
        ("8.8.8.8", "10.0.0.5", "host", Admission.NOT_PUBLIC),
        ("8.8.8.8", "192.168.1.5", "host", Admission.NOT_PUBLIC),
        ("8.8.8.8", "172.17.0.2", "relay", Admission.NOT_PUBLIC),  # relays get no exception
        ("8.8.8.8", "100.64.1.1", "srflx", Admission.NOT_PUBLIC),
        ("8.8.8.8", "127.0.0.1", "host", Admission.NOT_PUBLIC),
        ("8.8.8.8", "169.254.3.4", "host", Admission.NOT_PUBLIC),
        ("8.8.8.8", "fd12::1", "host", Admission.NOT_PUBLIC),
        ("8.8.8.8", "fe80::1", "host", Admission.NOT_PUBLIC),
        ("8.8.8.8", "::ffff:10.0.0.5", "host", Admission.NOT_PUBLIC),
        ("::ffff:8.8.8.8", "10.0.0.5", "host", Admission.NOT_PUBLIC),
        ("", "10.0.0.5", "host", Admission.NOT_PUBLIC),  # no IP peer: treated as public
        ("192.168.1.20", "192.168.1.5", "host", Admission.CHECK),
        ("10.0.0.1", "127.0.0.1", "host", Admission.CHECK),
        ("100.64.0.9", "100.64.1.1", "srflx", Admission.CHECK),
        ("fd00::9", "fd12::1", "host", Admission.CHECK),
        ("192.168.1.20", "9.9.9.9", "srflx", Admission.CHECK),
    ],
)
def test_which_addresses_get_checks(client_ip: str, address: str, kind: str, expected: Admission) -> None:
    candidates, dropped, refused = rule(client_ip)
    admission, _ = candidates.admit(host_candidate(40000, address, kind).removeprefix("candidate:"))
    assert admission is expected
    assert dropped == ([] if expected is Admission.CHECK else [expected]) and refused == []


def test_tcp_and_mdns_candidates_are_dropped_and_counted() -> None:
    candidates, dropped, _ = rule("10.0.0.1")
    # As Chromium and Firefox send them: TCP active, with the discard port.
    tcp = host_candidate(9, transport="TCP").removeprefix("candidate:") + " tcptype active"
    mdns = host_candidate(40000, "0c5a8f2e-1b2c-4d3e-8f9a-0123456789ab.local").removeprefix("candidate:")
    assert candidates.admit(tcp)[0] is Admission.NOT_UDP
    assert candidates.admit(mdns) == (Admission.MDNS, None)
    assert dropped == [Admission.NOT_UDP, Admission.MDNS]


@pytest.mark.parametrize("address", ["203.0.113.10", "127.0.0.1", "::1"])
def test_the_servers_own_endpoint_is_refused(address: str) -> None:
    candidates, _, _ = rule("10.0.0.1")
    with pytest.raises(SignalingError, match="server's own address"):
        candidates.admit(host_candidate(50000, address).removeprefix("candidate:"))
    assert candidates.admit(host_candidate(50001, address).removeprefix("candidate:"))[0] is Admission.CHECK


def test_a_description_loses_only_its_bad_lines_and_each_is_reported() -> None:
    candidates, dropped, refused = rule("8.8.8.8")
    sdp = (
        "v=0\r\na=candidate:1 1 udp 1 9.9.9.9 40000 typ srflx\r\na=candidate:2 1 udp 1 9.9.9.9 70000 typ srflx\r\n"
        "a=candidate:3 1 udp 1 10.0.0.5 40000 typ host\r\na=end-of-candidates\r\n"
    )
    # End-of-candidates goes too: aioice would give up on a component left without candidates.
    assert candidates.filter_description(sdp) == "v=0\r\na=candidate:1 1 udp 1 9.9.9.9 40000 typ srflx\r\n"
    assert len(refused) == 1 and "port 70000 is not 1-65535" in refused[0] and "9.9.9.9 70000" in refused[0]
    assert dropped == [Admission.NOT_PUBLIC]
    # Answers repeat the candidates of the first exchange: kept, and not counted again.
    assert "9.9.9.9 40000" in candidates.filter_description(sdp)
