"""Real audio files of a known play time, for the tests of per-second pricing: WAV from the
standard library, the other formats encoded with FFmpeg's encoders through PyAV."""

from __future__ import annotations

import io
import wave

import av

# container format, encoder, sample rate, file extension
FORMATS: dict[str, tuple[str, str, int]] = {
    "mp3": ("mp3", "libmp3lame", 44_100),
    "ogg": ("ogg", "libopus", 48_000),
    "flac": ("flac", "flac", 16_000),
    "m4a": ("ipod", "aac", 44_100),
    "webm": ("webm", "libopus", 48_000),
}


def wav_file(seconds: float, rate: int = 16_000) -> bytes:
    """``seconds`` of 16-bit mono silence as a WAV file."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * round(rate * seconds))
    return out.getvalue()


def encoded_file(extension: str, seconds: float) -> bytes:
    """``seconds`` of mono silence encoded as ``extension`` (a key of FORMATS, or "wav")."""
    if extension == "wav":
        return wav_file(seconds)
    container_format, codec, rate = FORMATS[extension]
    samples = round(rate * seconds)
    out = io.BytesIO()
    with av.open(out, mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "mono"
        step = stream.codec_context.frame_size or 1024
        for pts in range(0, samples, step):
            count = min(step, samples - pts)
            frame = av.AudioFrame(format="s16", layout="mono", samples=count)
            frame.planes[0].update(bytes(2 * count))
            frame.sample_rate = rate
            frame.pts = pts
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()
