"""DICOM: only the header is trusted to size a decode, and only once it agrees with the frame.

Order of work: file meta (read here, not by pydicom) -> transfer syntax allow-list -> a capped
inflate for Deflated Explicit VR -> the dataset -> modality, frames, bits and Rows x Columns
checked against the limits -> the compressed frame's own header checked against Rows x Columns
-> decode one frame (under the decode gate) -> reduce -> LUTs and windowing on the small copy.
No patient data reaches a log line, a warning or an error message.
"""

from __future__ import annotations

import io
import logging
import struct
import warnings
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt

from backend.imaging.codestream import FrameHeader, j2k_header, jpeg_header, rle_segments
from backend.imaging.errors import ImageRejected
from backend.imaging.gate import decode_slot
from backend.imaging.pixels import (
    reduce_array,
    reduction_factor,
    reject_colour,
    too_large_decoded,
    too_many_pixels,
    window_to_uint8,
)
from backend.imaging.types import DecodedImage, DicomInfo, ImageLimits

EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
RLE = "1.2.840.10008.1.2.5"
_JPEG = {
    "1.2.840.10008.1.2.4.50": "JPEG Baseline",
    "1.2.840.10008.1.2.4.51": "JPEG Extended",
    "1.2.840.10008.1.2.4.57": "JPEG Lossless",
    "1.2.840.10008.1.2.4.70": "JPEG Lossless SV1",
    "1.2.840.10008.1.2.4.80": "JPEG-LS Lossless",
    "1.2.840.10008.1.2.4.81": "JPEG-LS Near-Lossless",
}
_J2K = {
    "1.2.840.10008.1.2.4.90": "JPEG 2000 Lossless",
    "1.2.840.10008.1.2.4.91": "JPEG 2000",
}
_NATIVE = {
    "1.2.840.10008.1.2": "Implicit VR Little Endian",
    EXPLICIT_LE: "Explicit VR Little Endian",
    DEFLATED_LE: "Deflated Explicit VR Little Endian",
    "1.2.840.10008.1.2.2": "Explicit VR Big Endian",
}
SUPPORTED_TRANSFER_SYNTAXES = {**_NATIVE, **_JPEG, **_J2K, RLE: "RLE Lossless"}
# The decoder each compressed syntax uses: pylibjpeg's plugins are bounded by the frame size
# they are given (pydicom's own RLE decoder is not, and is slow).
_PLUGIN = {RLE: "pylibjpeg", **dict.fromkeys(_J2K, "pylibjpeg")}

RADIOGRAPH_MODALITIES = {"DX", "CR", "DR"}
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_SC_MODALITIES = {"", "OT", "SC", *RADIOGRAPH_MODALITIES}
_MONOCHROME = {"MONOCHROME1", "MONOCHROME2"}
_COLOUR = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"}
# Explicit VR elements with a 4-byte length (PS3.5 7.1.2).
_LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}
_INFLATE_CHUNK = 1 << 20


def decode_dicom(data: bytes, limits: ImageLimits) -> DecodedImage:
    _quiet_pydicom()
    meta, meta_end, syntax = _read_file_meta(data)
    if syntax not in SUPPORTED_TRANSFER_SYNTAXES:
        raise ImageRejected(
            f"DICOM transfer syntax {syntax or '(none)'} is not supported. Supported: "
            + ", ".join(sorted(set(SUPPORTED_TRANSFER_SYNTAXES.values())))
            + ".",
            status_code=415,
            code="dicom_unsupported_transfer_syntax",
        )
    if syntax == DEFLATED_LE:
        data = _inflated(data, meta, meta_end, limits)
    ds = _read_dataset(data)
    del data
    rows, cols, frames = _check_header(ds, syntax, limits)
    with decode_slot(limits.max_concurrent_decodes):
        arr = _decode_frame(ds, syntax, rows, cols)
        k = reduction_factor(cols, rows, limits.work_max_side)
        small = _reduced(arr, k, ds)
        del arr
    return _finish(ds, small, syntax, rows, cols, frames)


def _quiet_pydicom() -> None:
    """pydicom's validation warnings quote element values (names, IDs): never emit them."""
    from pydicom import config

    config.settings.reading_validation_mode = config.IGNORE
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)


def _corrupt(what: str = "The DICOM file could not be read") -> ImageRejected:
    return ImageRejected(f"{what} (truncated or corrupt).", code="image_corrupt")


def _read_file_meta(data: bytes) -> tuple[list[tuple[int, bytes, bytes]], int, str]:
    """Group 0002 elements (tag, VR, value), where the dataset starts, the transfer syntax."""
    pos, elements, syntax = 132, [], ""
    while pos + 8 <= len(data):
        group, elem = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            break
        vr = data[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            (length,) = struct.unpack_from("<I", data, pos + 8)
            start = pos + 12
        else:
            (length,) = struct.unpack_from("<H", data, pos + 6)
            start = pos + 8
        if start + length > len(data):
            raise _corrupt()
        value = data[start : start + length]
        elements.append(((group << 16) | elem, vr, value))
        if elem == 0x0010:
            syntax = value.rstrip(b"\0 ").decode("ascii", "replace")
        pos = start + length
    if not elements:
        raise _corrupt()
    return elements, pos, syntax


def _inflated(
    data: bytes, meta: list[tuple[int, bytes, bytes]], meta_end: int, limits: ImageLimits
) -> bytes:
    """The file re-written as Explicit VR Little Endian, refusing to inflate past the cap.

    pydicom would inflate the whole stream before anything can be checked: 500 KB of deflated
    zeros is 500 MB. The cap is the largest frame allowed plus the upload limit for the rest.
    """
    cap = limits.max_decoded_bytes + limits.max_bytes
    out = io.BytesIO()
    out.write(data[:128] + b"DICM" + _encode_meta(meta, EXPLICIT_LE))
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    try:
        pending = memoryview(data)[meta_end:]
        while pending or inflater.unconsumed_tail:
            src = inflater.unconsumed_tail or bytes(pending[:_INFLATE_CHUNK])
            if not inflater.unconsumed_tail:
                pending = pending[_INFLATE_CHUNK:]
            piece = inflater.decompress(src, _INFLATE_CHUNK)
            total += len(piece)
            if total > cap:
                raise too_large_decoded("This deflated DICOM", total, cap)
            out.write(piece)
            if inflater.eof:
                break
    except zlib.error as exc:
        raise _corrupt("The deflated DICOM could not be inflated") from exc
    return out.getvalue()


def _encode_meta(meta: list[tuple[int, bytes, bytes]], syntax: str) -> bytes:
    body = b""
    for tag, vr, value in meta:
        if tag == 0x00020000:
            continue
        if tag == 0x00020010:
            value = syntax.encode() + (b"\0" if len(syntax) % 2 else b"")
        head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr
        if vr in _LONG_VRS:
            head += b"\0\0" + struct.pack("<I", len(value))
        else:
            head += struct.pack("<H", len(value))
        body += head + value
    group_length = struct.pack("<HH", 2, 0) + b"UL" + struct.pack("<HI", 4, len(body))
    return group_length + body


def _read_dataset(data: bytes) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(io.BytesIO(data), force=False)
    except (InvalidDicomError, OSError, ValueError, EOFError, struct.error) as exc:
        raise _corrupt() from exc


def _text(ds: Any, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def _int(ds: Any, keyword: str, default: int) -> int:
    try:
        return int(ds.get(keyword, default) or default)
    except (TypeError, ValueError):
        return -1


def _check_header(ds: Any, syntax: str, limits: ImageLimits) -> tuple[int, int, int]:
    """Everything that can refuse the file without decoding a pixel."""
    if "PixelData" not in ds:
        kind = "float pixel data" if "FloatPixelData" in ds else "no pixel data"
        raise ImageRejected(f"The DICOM file has {kind}.", status_code=415, code="dicom_no_pixels")
    modality = _text(ds, "Modality").upper()
    sop_class = _text(ds, "SOPClassUID")
    is_sc = sop_class.startswith(_SECONDARY_CAPTURE)
    if not (modality in RADIOGRAPH_MODALITIES or (is_sc and modality in _SC_MODALITIES)):
        raise ImageRejected(
            f"DICOM modality {modality or '(none)'} is not a projection radiograph. MedSight "
            "reads chest X-rays: DX, CR or DR images, or a secondary capture of one.",
            status_code=415,
            code="dicom_unsupported_modality",
        )
    rows, cols = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
    frames = _int(ds, "NumberOfFrames", 1)
    samples = _int(ds, "SamplesPerPixel", 1)
    bits = _int(ds, "BitsAllocated", 16)
    photometric = _text(ds, "PhotometricInterpretation").upper() or "MONOCHROME2"
    if rows <= 0 or cols <= 0 or frames <= 0:
        raise _corrupt("The DICOM image header is invalid")
    if frames > 1:
        raise ImageRejected(
            f"Multi-frame DICOM ({frames} frames) is not supported: send the single radiograph.",
            status_code=415,
            code="dicom_multiframe",
        )
    if bits not in (8, 16) or samples not in (1, 3):
        raise ImageRejected(
            f"DICOM images with {bits} bits allocated and {samples} samples per pixel are not "
            "supported (8 or 16 bits; grayscale or RGB).",
            status_code=415,
            code="dicom_unsupported_pixels",
        )
    if photometric not in _MONOCHROME | _COLOUR or (samples == 1) != (photometric in _MONOCHROME):
        raise ImageRejected(
            f"DICOM photometric interpretation {photometric} with {samples} sample(s) per pixel "
            "is not supported.",
            status_code=415,
            code="dicom_unsupported_pixels",
        )
    if rows * cols > limits.max_pixels:
        raise too_many_pixels(cols, rows, limits.max_pixels)
    decoded = rows * cols * frames * samples * (bits // 8)
    if decoded > limits.max_decoded_bytes:
        raise too_large_decoded("This DICOM image", decoded, limits.max_decoded_bytes)
    if syntax in _JPEG or syntax in _J2K or syntax == RLE:
        _check_frame(ds, syntax, rows, cols, samples, bits)
    return rows, cols, frames


def _first_frame(ds: Any) -> bytes:
    from pydicom.encaps import generate_frames

    try:
        return next(generate_frames(ds.PixelData, number_of_frames=1))
    except (StopIteration, ValueError, struct.error, TypeError) as exc:
        raise _corrupt("The DICOM pixel data could not be read") from exc


def _check_frame(ds: Any, syntax: str, rows: int, cols: int, samples: int, bits: int) -> None:
    """The compressed frame must describe the image the header describes, and nothing bigger."""
    frame = _first_frame(ds)
    header: FrameHeader | None
    if syntax == RLE:
        segments = rle_segments(frame)
        if segments is None or len(segments) != samples * bits // 8:
            raise _corrupt("The DICOM RLE frame header is invalid")
        return
    header = j2k_header(frame) if syntax in _J2K else jpeg_header(frame)
    if header is None:
        raise _corrupt("The DICOM compressed frame header could not be read")
    if (header.width, header.height) != (cols, rows) or header.components != samples:
        raise ImageRejected(
            f"The compressed frame is {header.width}x{header.height} pixels with "
            f"{header.components} component(s), but the DICOM header says {cols}x{rows} with "
            f"{samples}.",
            code="dicom_frame_mismatch",
        )


def _decode_frame(ds: Any, syntax: str, rows: int, cols: int) -> npt.NDArray[Any]:
    from pydicom.pixels.utils import pixel_array

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = pixel_array(ds, index=0, decoding_plugin=_PLUGIN.get(syntax, ""))
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    # Decoders raise many types for broken data; pylibjpeg-rle's Rust panics are BaseException.
    except BaseException as exc:  # noqa: BLE001
        raise ImageRejected(
            "The DICOM pixel data could not be decoded (corrupt, or a codec without a decoder "
            "here).",
            code="image_corrupt",
        ) from exc
    if arr.shape[:2] != (rows, cols):
        raise _corrupt("The DICOM pixel data does not match its header")
    return arr


def _reduced(arr: npt.NDArray[Any], k: int, ds: Any) -> npt.NDArray[Any]:
    """The working copy; integer values are kept where a modality LUT must index them."""
    if k == 1:
        return arr
    small = reduce_array(arr, k)
    if "ModalityLUTSequence" in ds:
        return np.asarray(np.rint(small), dtype=arr.dtype)
    return small


def _finish(
    ds: Any, arr: npt.NDArray[Any], syntax: str, rows: int, cols: int, frames: int
) -> DecodedImage:
    from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut

    notes: list[str] = []
    photometric = _text(ds, "PhotometricInterpretation").upper() or "MONOCHROME2"
    if arr.ndim == 3:
        reject_colour(np.clip(np.rint(arr), 0, 255))
        arr = np.asarray(arr, dtype=np.float32).mean(axis=-1)
    values = np.asarray(apply_modality_lut(arr, ds), dtype=np.float32)
    windowed = "WindowCenter" in ds
    if windowed or "VOILUTSequence" in ds:
        values = np.asarray(apply_voi_lut(values, ds), dtype=np.float32)
        notes.append("VOI LUT/window applied")
    pixels = window_to_uint8(values, 0.0, 100.0) if windowed else window_to_uint8(values)
    if photometric == "MONOCHROME1":
        pixels = np.asarray(255 - pixels, dtype=np.uint8)
        notes.append("MONOCHROME1 inverted")
    info = dicom_info(ds, syntax, rows, cols)
    return DecodedImage(
        pixels=np.ascontiguousarray(pixels),
        format="dicom",
        width=cols,
        height=rows,
        warnings=notes,
        source_mode=f"{photometric} {info.bits_stored}-bit",
        dicom=info,
    )


def _spacing(ds: Any) -> tuple[tuple[float, float] | None, str | None]:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        try:
            if value is not None and len(value) == 2:
                return (float(value[0]), float(value[1])), keyword
        except (TypeError, ValueError):
            continue
    return None, None


def dicom_info(ds: Any, syntax: str, rows: int, cols: int) -> DicomInfo:
    spacing, source = _spacing(ds)
    return DicomInfo(
        sop_class_uid=_text(ds, "SOPClassUID"),
        sop_instance_uid=_text(ds, "SOPInstanceUID"),
        study_instance_uid=_text(ds, "StudyInstanceUID"),
        series_instance_uid=_text(ds, "SeriesInstanceUID"),
        transfer_syntax_uid=syntax,
        modality=_text(ds, "Modality").upper(),
        photometric_interpretation=_text(ds, "PhotometricInterpretation").upper(),
        rows=rows,
        columns=cols,
        bits_stored=_int(ds, "BitsStored", _int(ds, "BitsAllocated", 16)),
        pixel_spacing_mm=spacing,
        pixel_spacing_source=source,
        patient_name=_text(ds, "PatientName"),
        patient_id=_text(ds, "PatientID"),
        patient_birth_date=_text(ds, "PatientBirthDate"),
        patient_sex=_text(ds, "PatientSex"),
        study_id=_text(ds, "StudyID"),
        study_date=_text(ds, "StudyDate"),
        study_time=_text(ds, "StudyTime"),
        accession_number=_text(ds, "AccessionNumber"),
        referring_physician_name=_text(ds, "ReferringPhysicianName"),
        study_description=_text(ds, "StudyDescription"),
        series_number=_text(ds, "SeriesNumber"),
        instance_number=_text(ds, "InstanceNumber"),
        body_part_examined=_text(ds, "BodyPartExamined"),
        view_position=_text(ds, "ViewPosition"),
        laterality=_text(ds, "ImageLaterality") or _text(ds, "Laterality"),
        frame_of_reference_uid=_text(ds, "FrameOfReferenceUID"),
    )
