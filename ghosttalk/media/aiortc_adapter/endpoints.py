"""aiortc's senders and receivers, with only what forwarding needs.

aiortc runs an RTCP loop per sender and receiver and an RTP loop per sender, and gives every transceiver a
receiver with a decoder thread, its queue and events, the send-only ones that forward a speaker too. The
server writes RTP and RTCP itself, and decodes nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc import RTCRtpReceiver, RTCRtpSender


async def _loop_not_run(*_: object) -> None:
    """Runs instead of an aiortc loop whose work the server does itself: it ends at once."""


def _set_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


# stop() waits for each loop's start and exit events. For loops that end at once, one event set for good
# serves every sender and receiver: a set event is only ever read (waiting on it needs no event loop).
_LOOP_DONE = _set_event()


def skip_loops(endpoint: RTCRtpSender | RTCRtpReceiver) -> None:
    """Run none of aiortc's loops for this sender or receiver: the RTCP loop of each, and a sender's RTP loop,
    which pulls frames from its track. The forwarder writes the RTP and the connection's report loop the
    RTCP (``ghosttalk.media.reports``), so no task, timer or track waits per stream. Call before ``send()`` or
    ``receive()`` starts them."""
    prefix = f"_{type(endpoint).__name__}"
    for loop in ("rtp", "rtcp") if isinstance(endpoint, RTCRtpSender) else ("rtcp",):
        setattr(endpoint, f"_run_{loop}", _loop_not_run)  # a per-instance override
        setattr(endpoint, f"{prefix}__{loop}_started", _LOOP_DONE)
        setattr(endpoint, f"{prefix}__{loop}_exited", _LOOP_DONE)


# What every RTCRtpReceiver makes for decoding (a thread-safe queue and a thread event, about 5 kB) and for
# its RTCP loop (two asyncio events, about 2 kB), whether or not it ever receives.
_DECODER_PLUMBING = ("_RTCRtpReceiver__decoder_queue", "_RTCRtpReceiver__decoder_error")
_RTCP_EVENTS = ("_RTCRtpReceiver__rtcp_started", "_RTCRtpReceiver__rtcp_exited")


def _release(receiver: RTCRtpReceiver, names: tuple[str, ...]) -> None:
    # None, not a shared stand-in: should aiortc ever touch one again, it fails loudly instead of mixing
    # two receivers' traffic.
    for name in names:
        setattr(receiver, name, None)


def skip_decoder_thread(receiver: RTCRtpReceiver) -> None:
    """Stop ``receiver``'s decoder thread as soon as ``receive()`` has started it, and drop what fed it:
    forwarded audio is never decoded, and an idle thread per person costs memory and an OS thread for
    nothing. (aiortc only reads the decoder queue and event while the thread runs, or when its own RTP
    handler runs, which ``dtls.tap_rtp`` takes over.)"""
    receive = receiver.receive
    stop = getattr(receiver, "_RTCRtpReceiver__stop_decoder")  # noqa: B009 (private)

    async def receive_without_decoder(parameters: Any) -> None:
        await receive(parameters)
        stop()
        _release(receiver, _DECODER_PLUMBING)

    setattr(receiver, "receive", receive_without_decoder)  # noqa: B010 (a per-instance override)


def release_unused_receiver(receiver: RTCRtpReceiver) -> None:
    """Free what the receiver of a transceiver that only sends would need to receive. aiortc gives every
    transceiver a receiver, ours that forward a speaker too, but only calls ``receive()`` on one whose
    negotiated direction receives, which an answer cannot give a line we offer ``sendonly`` or ``inactive``
    (``ghosttalk.media.description.check_answer_directions``); ``stop()`` touches these only after ``receive()``."""
    if getattr(receiver, "_RTCRtpReceiver__started"):  # noqa: B009 (private)
        raise RuntimeError("the receiver has started")
    _release(receiver, _DECODER_PLUMBING + _RTCP_EVENTS)
