"""Real compressed DICOM copies of a real X-ray, made with real encoders at test time.

The uncompressed original is a 12-bit DX image built from a shared cxr-dev fixture (its licence
keeps derived images out of the repository). Each copy is encoded by an independent tool:

- JPEG Lossless SV1 (Process 14):  dcmtk `dcmcjpeg +e1`     (apt package `dcmtk`)
- JPEG Lossless (Process 14):      dcmtk `dcmcjpeg +el`
- JPEG-LS Lossless:                dcmtk `dcmcjpls +el`
- RLE Lossless:                    dcmtk `dcmcrle`
- JPEG 2000 Lossless:              pydicom + pylibjpeg-openjpeg (OpenJPEG's encoder)
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

DCMTK = {
    "jpeg_lossless_sv1": ["dcmcjpeg", "+e1"],
    "jpeg_lossless": ["dcmcjpeg", "+el"],
    "jpeg_ls": ["dcmcjpls", "+el"],
    "rle": ["dcmcrle"],
}
CODECS = (*DCMTK, "jpeg2000")
PATIENT = {"PatientName": "Doe^Jane^Q", "PatientID": "MRN-4417-22", "PatientBirthDate": "19610312"}


def have_dcmtk() -> bool:
    return all(shutil.which(cmd[0]) for cmd in DCMTK.values())


def dicom_from_array(arr: np.ndarray, **attrs: object) -> bytes:
    """A 12-bit MONOCHROME2 image (Explicit VR Little Endian); `attrs` set or override elements."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import SecondaryCaptureImageStorage

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = attrs.pop("SOPClassUID", SecondaryCaptureImageStorage)
    meta.MediaStorageSOPInstanceUID = attrs.pop("SOPInstanceUID", "1.2.826.0.1.3680043.8.498.9")
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = arr.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = arr.astype(np.uint16).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def xray_dicom(png: Path, **attrs: object) -> bytes:
    """A DX "for presentation" image: the PNG's pixels as 12-bit values, with study identifiers."""
    from pydicom.uid import DigitalXRayImageStorageForPresentation

    base = np.asarray(Image.open(png).convert("L"), dtype=np.uint16)
    # 12 bits with a little detail below the 8-bit steps, as a real detector has.
    arr = base * 16 + (np.arange(base.size, dtype=np.uint16).reshape(base.shape) * 7 % 16)
    study = {
        "SOPClassUID": DigitalXRayImageStorageForPresentation,
        "SOPInstanceUID": "1.2.826.0.1.3680043.8.498.10.1",
        "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.10.2",
        "SeriesInstanceUID": "1.2.826.0.1.3680043.8.498.10.3",
        "FrameOfReferenceUID": "1.2.826.0.1.3680043.8.498.10.4",
        "StudyID": "S1",
        "AccessionNumber": "ACC-7781",
        "StudyDate": "20261201",
        "StudyTime": "101500",
        "ReferringPhysicianName": "House^Gregory",
        "SeriesNumber": "1",
        "InstanceNumber": "1",
        "PatientSex": "F",
        **PATIENT,
        "BodyPartExamined": "CHEST",
        "ViewPosition": "PA",
        "ImagerPixelSpacing": [0.139, 0.139],
        "PixelSpacing": [0.143, 0.143],
        "PresentationIntentType": "FOR PRESENTATION",
    }
    return dicom_from_array(arr, **{**study, **attrs})


def compress(original: bytes, codec: str, workdir: Path) -> bytes:
    """The same dataset re-encoded with `codec` by a real encoder."""
    if codec == "jpeg2000":
        import pydicom
        from pydicom.uid import JPEG2000Lossless

        ds = pydicom.dcmread(io.BytesIO(original))
        ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg", generate_instance_uid=False)
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        return buf.getvalue()
    src, dst = workdir / "in.dcm", workdir / f"{codec}.dcm"
    src.write_bytes(original)
    subprocess.run([*DCMTK[codec], str(src), str(dst)], check=True, capture_output=True)  # noqa: S603
    return dst.read_bytes()
