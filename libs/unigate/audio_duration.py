"""How long an uploaded audio file plays, read by demuxing it with FFmpeg (PyAV).

Transcriptions and translations are priced per second of audio. When the provider does not
say how many seconds it billed (a translation, a transcript asked for as text), the gateway
and the relay read the duration from the file itself: every format OpenAI accepts (flac, mp3,
mp4, mpeg, mpga, m4a, ogg, wav, webm) is one FFmpeg demuxes. The packets' timestamps are read,
not decoded (cheap even for 25 MB), because a header's duration may be missing (WebM written
by a browser's MediaRecorder) or estimated from the bitrate (VBR MP3).
"""

from __future__ import annotations

import io
import logging
import math
from fractions import Fraction

import av

log = logging.getLogger(__name__)


def audio_seconds(data: bytes) -> Fraction | None:
    """The play time of the first audio stream in ``data``; None when it is not audio that
    FFmpeg can read."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            time_base = stream.time_base
            if time_base is None:
                return None
            start: int | None = None
            end: int | None = None
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                start = packet.pts if start is None else min(start, packet.pts)
                stop = packet.pts + (packet.duration or 0)
                end = stop if end is None else max(end, stop)
            if start is None or end is None:
                return None
            return max(Fraction(end - start) * Fraction(time_base), Fraction(0))
    except (av.FFmpegError, ValueError, OSError) as exc:
        log.info("unreadable audio upload: %s", exc)
        return None


def billed_seconds(seconds: Fraction) -> int:
    """Whole seconds, rounded up, as OpenAI reports a transcription's duration usage."""
    return math.ceil(seconds)
