"""Deterministic audio payloads for ``POST /v1/audio/speech``, and the duration of uploads.

Speech is 24 kHz, 16-bit, mono — OpenAI's own ``pcm`` format. ``wav`` and ``pcm`` carry
quiet noise derived from a hash of the request, so different inputs sound (and hash)
differently; ``mp3`` is an ID3 tag followed by valid silent MPEG-2 layer III frames. The
other formats only start with their container's magic bytes: players will not decode them.
"""

from __future__ import annotations

import hashlib
import io
import math
import wave
from typing import Final

SAMPLE_RATE: Final = 24_000
#: How long the simulated voice takes to say one token, at speed 1.0.
SECONDS_PER_TOKEN: Final = 0.05
CONTENT_TYPES: Final[dict[str, str]] = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
# MPEG-2 layer III, no CRC, 32 kbit/s, 24 kHz, mono: 576 samples in 96 bytes per frame.
_MP3_FRAME_HEADER: Final = b"\xff\xf3\x44\xc0"
_MP3_FRAME_BYTES: Final = 96
_MP3_FRAME_SAMPLES: Final = 576
_MAGIC: Final[dict[str, bytes]] = {
    "opus": b"OggS\x00\x02",
    "aac": b"\xff\xf1\x60\x40",
    "flac": b"fLaC\x00\x00\x00\x22",
}


def speech_samples(tokens: int, speed: float) -> int:
    """How many samples the simulated voice takes to say ``tokens`` tokens."""
    return max(1, round(max(tokens, 1) * SECONDS_PER_TOKEN / speed * SAMPLE_RATE))


def _pcm(key: str, samples: int) -> bytes:
    """Quiet, deterministic 16-bit little-endian noise."""
    data = bytearray(hashlib.shake_256(key.encode()).digest(2 * samples))
    data[1::2] = bytes(samples)  # high bytes zero: amplitude below 1% of full scale
    return bytes(data)


def _wav(pcm: bytes) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm)
    return buffer.getvalue()


def _syncsafe(size: int) -> bytes:
    """ID3v2.4 sizes: 28 bits, seven to a byte."""
    return bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))


def _id3_tag() -> bytes:
    """An ID3v2.4 tag naming the encoder, as OpenAI's mp3 answers start with one."""
    text = b"\x03unigate-sim"
    frame = b"TSSE" + _syncsafe(len(text)) + b"\x00\x00" + text
    return b"ID3\x04\x00\x00" + _syncsafe(len(frame)) + frame


def _mp3(samples: int) -> bytes:
    frames = math.ceil(samples / _MP3_FRAME_SAMPLES)
    frame = _MP3_FRAME_HEADER + bytes(_MP3_FRAME_BYTES - len(_MP3_FRAME_HEADER))
    return _id3_tag() + frame * frames


def speech_audio(key: str, samples: int, response_format: str) -> bytes:
    """``samples`` samples of simulated speech in ``response_format``; ``key`` seeds it."""
    if response_format == "mp3":
        return _mp3(samples)
    pcm = _pcm(key, samples)
    if response_format == "wav":
        return _wav(pcm)
    if response_format == "pcm":
        return pcm
    return _MAGIC[response_format] + pcm


def upload_duration(data: bytes) -> float:
    """Seconds of audio in an upload: exact for WAV files, else as if 16 kHz 16-bit mono."""
    try:
        with wave.open(io.BytesIO(data), "rb") as audio:
            return round(audio.getnframes() / audio.getframerate(), 2)
    except (wave.Error, EOFError, ZeroDivisionError):
        return round(len(data) / 32_000, 2)
