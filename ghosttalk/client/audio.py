"""Audio for the headless client: tones, WAV files, Opus frames, and the dominant frequency of a signal.

Everything is 48 kHz mono int16 at the edges; Opus frames are 20 ms (960 samples), as browsers send them.
"""

from __future__ import annotations

import fractions
import wave
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from aiortc.codecs.opus import OpusDecoder, OpusEncoder
from aiortc.jitterbuffer import JitterFrame

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
Pcm = npt.NDArray[np.int16]


def tone(frequency: float, seconds: float, amplitude: float = 0.3) -> Pcm:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (np.sin(2 * np.pi * frequency * t) * amplitude * 32767).astype(np.int16)


def read_audio(path: Path) -> Pcm:
    """Any file libav can read (WAV, Ogg/Opus, MP3 …), resampled to 48 kHz mono int16."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks: list[Pcm] = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1).astype(np.int16))
    for out in resampler.resample(None):
        chunks.append(out.to_ndarray().reshape(-1).astype(np.int16))
    if not chunks:
        raise ValueError(f"{path} holds no audio")
    return np.concatenate(chunks).astype(np.int16)


def write_wav(path: Path, pcm: Pcm) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.astype("<i2").tobytes())


def dominant_frequency(pcm: npt.NDArray[np.generic], sample_rate: int = SAMPLE_RATE) -> float:
    """The strongest frequency above 50 Hz (Hann window; resolution sample_rate / len)."""
    signal = pcm.astype(np.float64)
    if signal.size < 2:
        return 0.0
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.size)))
    freqs = np.fft.rfftfreq(signal.size, 1 / sample_rate)
    spectrum[freqs < 50] = 0
    return float(freqs[int(np.argmax(spectrum))])


def frame_levels(pcm: Pcm) -> list[int]:
    """The RFC 6464 audio level (-dBov, 0 loudest, 127 silent) of each 20 ms frame, as encode_opus frames it."""
    padded = np.concatenate([pcm, np.zeros(-len(pcm) % FRAME_SAMPLES, dtype=np.int16)]).astype(np.float64)
    frames = padded.reshape(-1, FRAME_SAMPLES) / 32768.0
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    with np.errstate(divide="ignore"):
        dbov = -20 * np.log10(rms)
    return [int(level) for level in np.clip(np.nan_to_num(dbov, posinf=127.0), 0, 127).round()]


def encode_opus(pcm: Pcm) -> list[bytes]:
    """20 ms Opus payloads for ``pcm`` (padded with silence to whole frames)."""
    encoder = OpusEncoder()
    padded = np.concatenate([pcm, np.zeros(-len(pcm) % FRAME_SAMPLES, dtype=np.int16)])
    payloads: list[bytes] = []
    for index in range(len(padded) // FRAME_SAMPLES):
        frame = av.AudioFrame.from_ndarray(
            padded[index * FRAME_SAMPLES : (index + 1) * FRAME_SAMPLES].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = SAMPLE_RATE
        frame.pts = index * FRAME_SAMPLES
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        encoded, _ = encoder.encode(frame)
        payloads.extend(encoded)
    return payloads


class OpusStreamDecoder:
    """Decodes one received stream, payload by payload, into mono PCM."""

    def __init__(self) -> None:
        self._decoder = OpusDecoder()
        self._chunks: list[Pcm] = []
        # Payloads libopus refused (an encrypted frame decoded without its key, say): lost, as a browser's are.
        self.undecodable = 0

    def decode(self, payload: bytes, timestamp: int) -> None:
        try:
            frames = self._decoder.decode(JitterFrame(payload, timestamp))
        except av.error.FFmpegError:
            self.undecodable += 1
            return
        for frame in frames:
            assert isinstance(frame, av.AudioFrame)
            samples = frame.to_ndarray().reshape(-1)
            channels = len(frame.layout.channels)
            self._chunks.append(samples[::channels].astype(np.int16))

    def pcm(self) -> Pcm:
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)
