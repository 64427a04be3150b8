"""The candidates a browser trickles for one connection: checked, remembered for naming how it connected,
held until the first offer is answered, then handed to aiortc one at a time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCDtlsTransport, RTCPeerConnection
from aiortc.sdp import candidate_from_sdp

from ghosttalk.contract import IceCandidate
from ghosttalk.media.aiortc_adapter.ice import Address, selected_candidate_type
from ghosttalk.media.description import Admission, CandidateFilter
from ghosttalk.media.negotiation import Negotiation

# How long ICE_CONNECTED waits for the trickled candidate behind a peer-reflexive address.
CANDIDATE_TYPE_SETTLE_SECONDS = 3.0
# Candidates remembered per peer for that (a browser sends a handful).
MAX_SIGNALLED_CANDIDATES = 64


class TrickledCandidates:
    def __init__(
        self,
        pc: RTCPeerConnection,
        negotiation: Negotiation,
        candidate_filter: CandidateFilter,
        send: Callable[[dict[str, Any]], None],
    ) -> None:
        self._pc = pc
        self._negotiation = negotiation
        self._filter = candidate_filter
        self._send = send
        # Candidates wait here for the first offer; the filter lets at most its limit in, ever.
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        # Address -> type of every candidate the peer trickled (for the honest ICE_CONNECTED type).
        self._signalled: dict[Address, str] = {}
        # The type of the remote candidate the connection uses, once connected (admin panel, metrics).
        self.connected_type: str | None = None

    def handle(self, candidate: IceCandidate | None) -> None:
        """One ``candidate`` message's value, well-formed as the contract says. Raises :class:`SignalingError`
        for a line the client got wrong."""
        if candidate is None or not candidate.candidate:
            # End of candidates: aioice would then fail early; our connect timeout decides instead.
            return
        line = candidate.candidate.removeprefix("candidate:")
        mid, index = candidate.sdp_mid, candidate.sdp_mline_index
        admission, parsed = self._filter.admit(line)  # refuses an invalid line, naming it
        if parsed is not None and len(self._signalled) < MAX_SIGNALLED_CANDIDATES:
            # Dropped ones too: a relay behind a private address connects as prflx, and is reported as relay.
            self._signalled[(str(parsed.address), parsed.port)] = parsed.type
        if admission is Admission.OVER_LIMIT:
            raise self._filter.over_limit()
        if admission is not Admission.CHECK:
            return
        self._queue.put_nowait({"candidate": line, "sdpMid": mid, "sdpMLineIndex": index})

    async def run(self) -> None:
        """Hand queued candidates to aiortc once the first offer is answered (a task the connection owns)."""
        await self._negotiation.remote_set.wait()
        while True:
            item = await self._queue.get()
            mid, index = item["sdpMid"], item["sdpMLineIndex"]
            known = self._negotiation.known_mids()
            # Matched by sdpMid, else by sdpMLineIndex (Pion sends an empty mid with a valid index). Under
            # BUNDLE every m-line shares the first one's transport, so that is where every candidate goes.
            if mid not in known and (index is None or index >= len(known)):
                where = f"sdpMid {mid!r}" + ("" if index is None else f" or sdpMLineIndex {index}")
                self._send({"type": "error", "message": f"candidate for unknown {where}"})
                continue
            candidate = candidate_from_sdp(item["candidate"])  # well-formed: the filter has parsed it
            candidate.sdpMid, candidate.sdpMLineIndex = self._negotiation.bundle_mid, None
            try:
                await self._pc.addIceCandidate(candidate)
            except Exception as exc:
                self._send({"type": "error", "message": f"candidate rejected: {exc}"})

    def identify(self, dtls: RTCDtlsTransport) -> str:
        """The connection is up: the type of the remote candidate it uses (prflx if not known yet)."""
        self.connected_type = selected_candidate_type(dtls, self._signalled)
        return self.connected_type

    async def settle(self, dtls: RTCDtlsTransport) -> str:
        """Media flows already; a peer-reflexive type is given a moment to become the trickled candidate behind
        it, so that the log says relay (say) rather than prflx for a TURN user."""
        deadline = time.monotonic() + CANDIDATE_TYPE_SETTLE_SECONDS
        while self.connected_type == "prflx" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            self.connected_type = selected_candidate_type(dtls, self._signalled)
        return self.connected_type or "prflx"
