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


def xray_dicom(png: Path, **attrs: object) -> bytes:
    """A DX "for presentation" image: the PNG's pixels as 12-bit values, with study identifiers."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian

    base = np.asarray(Image.open(png).convert("L"), dtype=np.uint16)
    # 12 bits with a little detail below the 8-bit steps, as a real detector has.
    arr = base * 16 + (np.arange(base.size, dtype=np.uint16).reshape(base.shape) * 7 % 16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.10.1"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.10.2"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.10.3"
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.10.4"
    ds.StudyID, ds.AccessionNumber, ds.StudyDate, ds.StudyTime = (
        "S1",
        "ACC-7781",
        "20261201",
        "101500",
    )
    ds.ReferringPhysicianName = "House^Gregory"
    ds.SeriesNumber, ds.InstanceNumber = "1", "1"
    ds.PatientSex = "F"
    for key, value in PATIENT.items():
        setattr(ds, key, value)
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "DX", "CHEST", "PA"
    ds.ImagerPixelSpacing = [0.139, 0.139]
    ds.PixelSpacing = [0.143, 0.143]
    ds.Rows, ds.Columns = arr.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PresentationIntentType = "FOR PRESENTATION"
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = arr.astype(np.uint16).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


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
