"""Compressed DICOM: real encoders' copies of a real X-ray decode and score like the original;
what is not a supported radiograph is refused before decoding; no patient data is logged."""

from __future__ import annotations

import io
import logging
import os
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from backend.imaging import DecodedImage, ImageLimits, ImageRejected, decode_image
from tests.conftest import shared_data
from tests.data.dicom.fixtures import CODECS, PATIENT, compress, have_dcmtk, xray_dicom

MODEL_DIR = Path(__file__).resolve().parents[3] / "models" / "vision" / "v1"


def _need_dcmtk() -> None:
    if not have_dcmtk():
        if os.environ.get("CI"):
            pytest.fail("dcmtk (dcmcjpeg, dcmcjpls, dcmcrle) must be installed in CI")
        pytest.skip("dcmtk is not installed (apt-get install dcmtk)")


@pytest.fixture(scope="module")
def xray_png() -> Path:
    return shared_data("cxr-dev", "fixtures", "dev-0012.png")


@pytest.fixture(scope="module")
def original(xray_png: Path) -> bytes:
    return xray_dicom(xray_png)


@pytest.fixture(scope="module")
def copies(original: bytes, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    _need_dcmtk()
    work = tmp_path_factory.mktemp("codecs")
    return {codec: compress(original, codec, work) for codec in CODECS}


def _syntax(data: bytes) -> str:
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    return str(ds.file_meta.TransferSyntaxUID)


def test_each_copy_is_really_compressed_with_its_codec(copies: dict[str, bytes]) -> None:
    expected = {
        "jpeg_lossless_sv1": "1.2.840.10008.1.2.4.70",
        "jpeg_lossless": "1.2.840.10008.1.2.4.57",
        "jpeg_ls": "1.2.840.10008.1.2.4.80",
        "rle": "1.2.840.10008.1.2.5",
        "jpeg2000": "1.2.840.10008.1.2.4.90",
    }
    assert {codec: _syntax(data) for codec, data in copies.items()} == expected


def test_compressed_copies_decode_to_the_original_pixels_and_attributes(
    original: bytes, copies: dict[str, bytes]
) -> None:
    reference = decode_image(original)
    assert reference.dicom is not None
    for codec, data in copies.items():
        decoded = decode_image(data)
        assert np.array_equal(decoded.pixels, reference.pixels), codec
        assert decoded.dicom is not None
        assert decoded.dicom.transfer_syntax_uid == _syntax(data)
        for field in ("study_instance_uid", "series_instance_uid", "sop_instance_uid"):
            assert getattr(decoded.dicom, field) == getattr(reference.dicom, field), codec
        assert decoded.dicom.pixel_spacing_mm == (0.143, 0.143)
        assert decoded.dicom.pixel_spacing_source == "PixelSpacing"


def test_dicom_info_carries_what_a_result_writer_needs(original: bytes) -> None:
    info = decode_image(original).dicom
    assert info is not None
    assert info.study_instance_uid == "1.2.826.0.1.3680043.8.498.10.2"
    assert info.series_instance_uid == "1.2.826.0.1.3680043.8.498.10.3"
    assert info.sop_instance_uid == "1.2.826.0.1.3680043.8.498.10.1"
    assert info.sop_class_uid == "1.2.840.10008.5.1.4.1.1.1.1"
    assert (info.modality, info.photometric_interpretation, info.bits_stored) == (
        "DX",
        "MONOCHROME2",
        12,
    )
    assert (info.patient_name, info.patient_id, info.patient_birth_date) == (
        "Doe^Jane^Q",
        "MRN-4417-22",
        "19610312",
    )
    assert (info.accession_number, info.study_id, info.study_date) == ("ACC-7781", "S1", "20261201")
    assert info.frame_of_reference_uid.endswith(".10.4")
    # Imager spacing is the fallback when PixelSpacing is absent.
    only_imager = decode_image(_without(original, "PixelSpacing")).dicom
    assert only_imager is not None and only_imager.pixel_spacing_mm == (0.139, 0.139)
    assert only_imager.pixel_spacing_source == "ImagerPixelSpacing"


def _without(data: bytes, *keywords: str) -> bytes:
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data))
    for keyword in keywords:
        delattr(ds, keyword)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.mark.slow
def test_compressed_copies_score_like_the_uncompressed_original(
    original: bytes, copies: dict[str, bytes]
) -> None:
    from backend.ml.vision import load_scorer

    scorer = load_scorer(MODEL_DIR, backend="torch")
    images = [decode_image(original), *(decode_image(d) for d in copies.values())]
    results = scorer.score_batch([im.pixels for im in images])
    reference = results[0].anomaly_score
    for codec, result in zip(copies, results[1:], strict=True):
        assert result.anomaly_score == pytest.approx(reference, abs=0.01), codec
        assert result.is_chest_xray == results[0].is_chest_xray


def test_monochrome1_and_window_survive_compression(
    xray_png: Path, tmp_path: Path, original: bytes
) -> None:
    _need_dcmtk()
    plain = decode_image(original).pixels.astype(np.float64)
    mono1 = xray_dicom(xray_png, PhotometricInterpretation="MONOCHROME1")
    inverted = decode_image(compress(mono1, "jpeg_ls", tmp_path))
    assert np.corrcoef(inverted.pixels.ravel(), plain.ravel())[0, 1] < -0.99
    assert "MONOCHROME1 inverted" in inverted.warnings
    window = xray_dicom(xray_png, WindowCenter=1500, WindowWidth=1000)
    windowed = decode_image(compress(window, "jpeg_lossless", tmp_path))
    assert "VOI LUT/window applied" in windowed.warnings
    # Values above the window's top (2000) are all white.
    bright = plain >= np.percentile(plain, 99)
    assert windowed.pixels[bright].min() == 255


def test_large_image_is_analysed_on_a_reduced_copy(xray_png: Path) -> None:
    from PIL import Image

    big = xray_png.parent / "dev-0012.png"
    img = Image.open(big).convert("L").resize((3000, 2400))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    decoded = decode_image(buf.getvalue())
    assert (decoded.width, decoded.height) == (3000, 2400)
    assert max(decoded.pixels.shape) <= ImageLimits().work_max_side
    assert decoded.scale == pytest.approx(3000 / decoded.pixels.shape[1])


# --- refusals ----------------------------------------------------------------------------------
def _refused(data: bytes, status: int, limits: ImageLimits | None = None) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        decode_image(data, limits)
    assert info.value.status_code == status, info.value.message
    for value in PATIENT.values():
        assert value not in info.value.message
    return info.value


def test_other_modalities_are_refused_with_a_reason(xray_png: Path) -> None:
    for modality in ("CT", "MR", "US", "MG", "NM"):
        error = _refused(xray_dicom(xray_png, Modality=modality), 415)
        assert modality in error.message and "DX" in error.message
    # A secondary capture of a radiograph (Modality OT) is read.
    sc = xray_dicom(xray_png, Modality="OT", SOPClassUID="1.2.840.10008.5.1.4.1.1.7")
    assert decode_image(sc).format == "dicom"
    assert decode_image(xray_dicom(xray_png, Modality="CR")).format == "dicom"


def test_multiframe_is_refused(xray_png: Path) -> None:
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(xray_dicom(xray_png)))
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    assert "Multi-frame" in _refused(buf.getvalue(), 415).message


def _with_syntax(data: bytes, uid: str) -> bytes:
    """The file with another transfer syntax UID in its meta (element and group lengths fixed)."""
    old = b"1.2.840.10008.1.2.1\0"
    new = uid.encode() + (b"\0" if len(uid) % 2 else b"")
    head, rest = data[:132], data[132:]
    idx = rest.index(old)
    delta = len(new) - len(old)
    length_at = idx - 2
    (length,) = struct.unpack_from("<H", rest, length_at)
    patched = rest[:length_at] + struct.pack("<H", length + delta) + new + rest[idx + len(old) :]
    (group_len,) = struct.unpack_from("<I", patched, 8)
    return head + patched[:8] + struct.pack("<I", group_len + delta) + patched[12:]


def test_unlisted_transfer_syntaxes_are_refused(original: bytes) -> None:
    for uid in ("1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.201", "1.2.3.4"):
        error = _refused(_with_syntax(original, uid), 415)
        assert uid in error.message


def test_a_frame_bigger_than_its_header_is_refused(copies: dict[str, bytes]) -> None:
    import pydicom

    for codec in ("jpeg2000", "jpeg_ls", "jpeg_lossless_sv1"):
        ds = pydicom.dcmread(io.BytesIO(copies[codec]))
        ds.Rows, ds.Columns = 128, 128  # the codestream still says 256 x 256
        buf = io.BytesIO()
        ds.save_as(buf)
        error = _refused(buf.getvalue(), 422)
        assert "256x256" in error.message and "128x128" in error.message


def test_rle_segments_that_inflate_past_the_frame_are_refused(copies: dict[str, bytes]) -> None:
    import pydicom
    from pydicom.encaps import encapsulate

    ds = pydicom.dcmread(io.BytesIO(copies["rle"]))
    segment = b"\x81\x00" * (4 * 2**20)  # each 2 bytes say "128 zeros": 512 MB per segment
    frame = struct.pack("<16I", 2, 64, 64 + len(segment), *([0] * 13)) + segment + segment
    ds.PixelData = encapsulate([frame])
    buf = io.BytesIO()
    ds.save_as(buf)
    _refused(buf.getvalue(), 422)


def test_decoded_size_is_checked_from_the_header(original: bytes) -> None:
    tight = ImageLimits(max_decoded_bytes=100_000)  # the image needs 256*256*2 = 131,072
    assert "once decoded" in _refused(original, 413, tight).message


# --- no patient data in logs --------------------------------------------------------------------
def test_no_patient_data_reaches_logs_warnings_or_reprs(
    xray_png: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # An over-long PN and a malformed date make pydicom want to warn, quoting the values.
    data = xray_dicom(
        xray_png,
        PatientName="Doe^Jane^Q" * 10,
        PatientBirthDate="19610312xx",
        OtherPatientIDs="MRN-4417-22",
    )
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        decoded = decode_image(data)
        _refused(xray_dicom(xray_png, Modality="CT"), 415)
    text = " ".join(
        [r.getMessage() for r in caplog.records]
        + [str(w.message) for w in caught]
        + [repr(decoded), repr(decoded.dicom)]
    )
    for value in ("Doe", "Jane", "MRN-4417", "19610312", "ACC-7781", "House"):
        assert value not in text, value
    assert isinstance(decoded, DecodedImage) and decoded.dicom is not None
    assert decoded.dicom.patient_id == "MRN-4417-22"
