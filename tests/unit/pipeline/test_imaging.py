"""Stage 1 input checks: sniffing, decoding, DICOM handling and every hostile file."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.imaging import ImageLimits, ImageRejected, decode_image, sniff_format
from tests.conftest import shared_data
from tests.data.dicom.fixtures import dicom_from_array

BAD = Path(__file__).resolve().parents[2] / "data" / "bad_inputs"


@pytest.fixture(scope="module")
def bad_files() -> Path:
    shared_data("cxr-dev", "fixtures")
    files = BAD / "files"
    if not (files / "expected.json").exists():
        subprocess.run([sys.executable, str(BAD / "generate.py")], check=True)
    return files


def test_generator_makes_at_least_25_hostile_files(bad_files: Path) -> None:
    expected = json.loads((bad_files / "expected.json").read_text())
    assert len(expected) >= 25


def test_each_bad_file_is_rejected_or_accepted_with_a_warning(bad_files: Path) -> None:
    expected = json.loads((bad_files / "expected.json").read_text())
    limits = ImageLimits(max_bytes=20 * 2**20, max_pixels=50_000_000, min_side=64)
    for name, outcome in expected.items():
        data = (bad_files / name).read_bytes()
        if outcome == "reject":
            with pytest.raises(ImageRejected) as info:
                decode_image(data, limits)
            assert 400 <= info.value.status_code < 500, name
            assert info.value.message and "Traceback" not in info.value.message
        else:
            decoded = decode_image(data, limits)
            assert decoded.pixels.dtype == np.uint8 and decoded.pixels.ndim == 2, name


def test_bomb_is_refused_before_decoding(bad_files: Path) -> None:
    with pytest.raises(ImageRejected) as info:
        decode_image((bad_files / "bomb_30000.png").read_bytes())
    assert info.value.status_code == 413 and "pixels" in info.value.message


def test_sniffing_ignores_names_and_types() -> None:
    assert sniff_format(b"\x89PNG\r\n\x1a\n....") == "png"
    assert sniff_format(b"\xff\xd8\xff\xe0....") == "jpeg"
    assert sniff_format(b"\0" * 128 + b"DICM" + b"\0" * 10) == "dicom"
    with pytest.raises(ImageRejected) as info:
        sniff_format(b"GIF89a....")
    assert info.value.status_code == 415 and "GIF" in info.value.message


def test_real_xray_decodes_to_its_own_pixels() -> None:
    path = shared_data("cxr-dev", "fixtures", "dev-0012.png")
    decoded = decode_image(path.read_bytes())
    assert (decoded.width, decoded.height, decoded.format) == (256, 256, "png")
    assert np.array_equal(decoded.pixels, np.asarray(Image.open(path).convert("L")))


def test_exif_orientation_is_applied() -> None:
    img = Image.open(shared_data("cxr-dev", "fixtures", "dev-0012.png")).convert("L")
    wide = img.resize((300, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    buf = io.BytesIO()
    wide.save(buf, format="JPEG", exif=exif.tobytes())
    decoded = decode_image(buf.getvalue())
    assert (decoded.width, decoded.height) == (200, 300)


def _dicom(arr: np.ndarray, **attrs: object) -> bytes:
    return dicom_from_array(arr, **attrs)


def test_dicom_16bit_monochrome1_rescale_and_window() -> None:
    base = np.asarray(
        Image.open(shared_data("cxr-dev", "fixtures", "dev-0012.png")).convert("L"), np.float64
    )
    arr12 = (base * 16).astype(np.uint16)  # 12-bit stored values
    plain = decode_image(_dicom(arr12))
    corr = np.corrcoef(plain.pixels.ravel(), base.ravel())[0, 1]
    assert corr > 0.99 and plain.pixels.dtype == np.uint8
    inverted = decode_image(_dicom(arr12, PhotometricInterpretation="MONOCHROME1"))
    assert np.corrcoef(inverted.pixels.ravel(), base.ravel())[0, 1] < -0.99
    assert any("MONOCHROME1" in w for w in inverted.warnings)
    windowed = decode_image(
        _dicom(arr12, RescaleSlope=1, RescaleIntercept=-1024, WindowCenter=1000, WindowWidth=2000)
    )
    assert any("window" in w.lower() for w in windowed.warnings)
    assert windowed.pixels.std() > 10
