"""``ghosttalk join``: take part in a room from the shell — play a file into it, record what it says, chat.

A link with a key (``/r/<room>#<secret>``) joins the end-to-end encrypted room as the page does: voice and
chat are sealed and opened here, and the server sees neither."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from ghosttalk.client.audio import SAMPLE_RATE, OpusStreamDecoder, Pcm, read_audio, write_wav
from ghosttalk.client.e2ee import read_secret
from ghosttalk.client.participant import ChatLine, Client, ClientOptions, JoinError, ReceivedPacket
from ghosttalk.contract import MAX_CHAT_CHARS, SignalingError, validate_name, validate_room
from ghosttalk.contract.messages import chat_text


@dataclass(slots=True, frozen=True)
class RoomLink:
    base_url: str
    room: str
    secret: str | None  # the fragment's key: None for a plain room


def split_room_url(url: str, room: str | None) -> RoomLink:
    """``http://host/r/<room>[#<secret>]`` (a page link) or a base URL plus ``--room``. Raises ValueError
    (:class:`~ghosttalk.client.e2ee.DamagedKey` for a fragment that is not a key)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r} is not an http(s) URL")
    path = parts.path.rstrip("/")
    if room is None:
        if not path.startswith("/r/"):
            raise ValueError("give a room link (http://host/r/<room>) or --room")
        room = path[len("/r/") :]
    base_url = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    return RoomLink(base_url, validate_room(room), read_secret(parts.fragment))


def print_chat(line: ChatLine) -> None:
    """``<name>: <text>`` on stdout, a line each (a message's own line breaks become spaces)."""
    print(f"{line.name}: {' '.join(line.text.splitlines())}", flush=True)


class Recorder:
    """Mixes every speaker into one track, each placed by its RTP timestamps from its first packet."""

    def __init__(self, start: float) -> None:
        self.start = start
        self._streams: dict[str, tuple[OpusStreamDecoder, int]] = {}

    def on_packet(self, speaker: str, packet: ReceivedPacket) -> None:
        if speaker not in self._streams:
            offset = int((packet.arrival - self.start) * SAMPLE_RATE)
            self._streams[speaker] = (OpusStreamDecoder(), offset)
        self._streams[speaker][0].decode(packet.payload, packet.timestamp)

    def mix(self) -> Pcm:
        tracks = [(decoder.pcm(), offset) for decoder, offset in self._streams.values()]
        length = max((offset + len(pcm) for pcm, offset in tracks), default=0)
        mixed = np.zeros(length, dtype=np.int32)
        for pcm, offset in tracks:
            mixed[offset : offset + len(pcm)] += pcm
        return np.clip(mixed, -32768, 32767).astype(np.int16)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ghosttalk join",
        description="Join a GhostTalk room as a headless participant: play a file into it and/or record "
        "what the room says (all speakers mixed) to a WAV file.",
    )
    parser.add_argument("url", help="room link http(s)://host[:port]/r/<room>[#<key>] (quote it: the key after # "
                        "makes the room end-to-end encrypted), or the server URL with --room")
    parser.add_argument("--room", help="room name when URL is the server's base URL")
    parser.add_argument("--name", required=True, help="nickname shown to the room (1-12 characters)")
    parser.add_argument("--play", type=Path, help="audio file to speak (WAV, Ogg/Opus, MP3: anything libav reads)")
    parser.add_argument("--record", type=Path, help="write what the room says, mixed, to this WAV file")
    parser.add_argument("--say", metavar="TEXT", action="append", default=[],
                        help=f"send TEXT to the room's chat once joined (repeatable; at most {MAX_CHAT_CHARS} "
                        "characters). Chat from the others is printed to stdout as '<name>: <text>'")
    parser.add_argument("--seconds", type=float,
                        help="how long to stay; default: the length of --play plus 1 s, or until Ctrl-C")
    parser.add_argument("--turn-server", action="append", default=[], help="TURN URL (repeatable)")
    parser.add_argument("--turn-user", help="TURN username")
    parser.add_argument("--turn-pass", help="TURN password")
    parser.add_argument("--relay-only", action="store_true", help="use only TURN relay candidates")
    return parser


async def run(args: argparse.Namespace) -> int:
    link = split_room_url(args.url, args.room)
    room = link.room
    name = validate_name(args.name)
    try:
        says = [chat_text(text) for text in args.say]
    except SignalingError as exc:
        raise ValueError(f"--say: {exc}") from None
    pcm = read_audio(args.play) if args.play else None
    ice_servers = []
    if args.turn_server:
        ice_servers.append({"urls": args.turn_server, "username": args.turn_user, "credential": args.turn_pass})
    options = ClientOptions(
        ice_servers=ice_servers, relay_only=args.relay_only, keep_packets=False, rejoin=True, secret=link.secret
    )
    client = Client(link.base_url, room, name, options)
    client.on_chat = print_chat
    recorder = Recorder(time.time())
    if args.record:
        client.on_packet = recorder.on_packet
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await client.connect()
    except (JoinError, TimeoutError) as exc:
        print(f"ghosttalk join: could not join {room!r}: {exc}", file=sys.stderr)
        return 1
    print(f"joined {room!r} as {name!r} ({client.self_id}); in the room: "
          f"{', '.join(p.name for p in client.peers.values())}", file=sys.stderr)
    if client.safety_code is None:
        print("this room is not end-to-end encrypted", file=sys.stderr)
    else:
        print(f"end-to-end encrypted; safety code {client.safety_code}", file=sys.stderr)
    for text in says:
        await client.say(text)
    seconds = args.seconds
    if seconds is None and pcm is not None:
        seconds = len(pcm) / SAMPLE_RATE + 1.0
    tasks: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait())]
    if pcm is not None:
        tasks.append(asyncio.create_task(client.play(pcm)))
    try:
        if seconds is not None:
            await asyncio.wait({tasks[0]}, timeout=seconds)
        else:
            await tasks[0]
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()
    failures = [r for r in results if isinstance(r, Exception)]
    for failure in failures:
        print(f"ghosttalk join: playing failed: {failure!r}", file=sys.stderr)
    if args.record:
        mixed = recorder.mix()
        write_wav(args.record, mixed)
        print(f"recorded {len(mixed) / SAMPLE_RATE:.1f} s to {args.record}", file=sys.stderr)
    return 1 if failures else 0


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except (ValueError, OSError) as exc:
        print(f"ghosttalk join: {exc}", file=sys.stderr)
        return 2
