"""Recognise the accepted audio containers from their first bytes (never from a file name)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AudioContainer:
    """A recognised container: a short name and the FFmpeg demuxer forced when decoding it."""

    name: str
    demuxer: str


WAV = AudioContainer("wav", "wav")
MP3 = AudioContainer("mp3", "mp3")
OGG = AudioContainer("ogg", "ogg")
WEBM = AudioContainer("webm", "matroska")  # one FFmpeg demuxer reads WebM and Matroska
MP4 = AudioContainer("m4a", "mp4")  # the mov/mp4/m4a demuxer

ACCEPTED_CONTAINERS: tuple[AudioContainer, ...] = (WAV, MP3, OGG, WEBM, MP4)

# ISO BMFF brands of audio or audio-capable MP4 files (m4a from phones, browsers' MediaRecorder).
_MP4_BRANDS = frozenset(
    {
        b"M4A ",
        b"M4B ",
        b"mp41",
        b"mp42",
        b"isom",
        b"iso2",
        b"iso5",
        b"iso6",
        b"dash",
        b"3gp4",
        b"3gp5",
        b"3gp6",
        b"3g2a",
        b"qt  ",
        b"avc1",
        b"MSNV",
        b"F4A ",
    }
)


def _is_mp3_frame_header(head: bytes) -> bool:
    """An MPEG audio Layer III frame sync (0xFFE/0xFFF, valid version, layer III, valid rate)."""
    if len(head) < 4 or head[0] != 0xFF or (head[1] & 0xE0) != 0xE0:
        return False
    version = (head[1] >> 3) & 0x03
    layer = (head[1] >> 1) & 0x03
    bitrate_index = (head[2] >> 4) & 0x0F
    rate_index = (head[2] >> 2) & 0x03
    # version 01 is reserved; layer 01 is Layer III (ADTS AAC has layer 00 and is not accepted).
    return (
        version != 0x01
        and layer == 0x01
        and bitrate_index not in (0x00, 0x0F)
        and (rate_index != 0x03)
    )


def sniff_container(data: bytes) -> AudioContainer | None:
    """Return the audio container the bytes start with, or None when it is not an accepted one."""
    head = data[:16]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return WAV
    if head[:4] == b"OggS":
        return OGG
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML magic: WebM / Matroska
        return WEBM
    if head[4:8] == b"ftyp" and head[8:12] in _MP4_BRANDS:
        return MP4
    if head[:3] == b"ID3" or _is_mp3_frame_header(head):
        return MP3
    return None
