"""Containers are recognised from their bytes, whatever the file is called."""

from __future__ import annotations

import numpy as np
import pytest

from backend.ml.speech import sniff_container
from tests.unit.speech.audio_fixtures import ENCODINGS, encode
from tests.unit.speech.conftest import shared_data

TONE = (0.2 * np.sin(2 * np.pi * 220 * np.arange(8000) / 16000)).astype(np.float32)


@pytest.mark.parametrize("container", sorted(ENCODINGS))
def test_each_accepted_container_is_recognised(container: str) -> None:
    sniffed = sniff_container(encode(TONE, 16000, container))
    assert sniffed is not None
    assert sniffed.name == container


def test_headerless_mp3_frames_are_recognised() -> None:
    data = encode(TONE, 16000, "mp3")
    # Strip the ID3 tag the muxer writes: a bare MPEG Layer III stream must still be recognised.
    size = int.from_bytes(bytes(b & 0x7F for b in data[6:10]), "big")
    bare = data[10 + size :]
    assert bare[:1] == b"\xff"
    sniffed = sniff_container(bare)
    assert sniffed is not None and sniffed.name == "mp3"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, this is a text file\n",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",  # JPEG
        b"\xff\xf1\x50\x80\x02\x1f\xfc",  # ADTS AAC: not an accepted container
        b"RIFF\x24\x00\x00\x00AVI LIST",  # RIFF but not WAVE
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00",  # an HEIC image's brand
        b"PK\x03\x04\x14\x00\x06\x00",  # zip / docx
    ],
)
def test_other_bytes_are_not_audio(data: bytes) -> None:
    assert sniff_container(data) is None


def test_a_chest_xray_png_is_not_audio() -> None:
    png = sorted(shared_data("cxr-dev", "fixtures").glob("*.png"))[0]
    assert sniff_container(png.read_bytes()) is None
