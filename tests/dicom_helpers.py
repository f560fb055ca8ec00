"""A tiny ultrasound DICOM writer shared by the tests (pydicom): identifiers in the header, an
optional ultrasound region, burned-in "text" above it. Importable from any test (tests/ is on the path
through its conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

H, W = 64, 80
REGION = (10, 8, 69, 59)  # x0, y0, x1, y1 inclusive
TEXT = (slice(0, 4), slice(2, 30))  # burned-in "text" above the region
NAME, PID = "DOE^JANE", "PID12345"


def us_image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((H, W), np.uint8)
    x0, y0, x1, y1 = REGION
    img[y0:y1 + 1, x0:x1 + 1] = rng.integers(40, 220, (y1 - y0 + 1, x1 - x0 + 1))
    img[TEXT] = 255
    return img


def make_dicom(path: Path, pixels: np.ndarray | None = None, region_cm: float | None = 0.02,
               pixel_spacing: list[float] | None = None, photometric: str = "MONOCHROME2", frames: int = 1,
               bits: int = 8) -> Path:
    pixels = us_image() if pixels is None else pixels
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.4.5", generate_uid()
    ds.Modality, ds.Manufacturer = "US", "Acme"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = NAME, PID, "19900101"
    ds.PatientAddress, ds.InstitutionName, ds.ReferringPhysicianName = "1 Main St", "St Elsewhere", "HOUSE^G"
    ds.OperatorsName, ds.DeviceSerialNumber, ds.AccessionNumber = "SONO^A", "SN999", "ACC77"
    ds.StudyDate, ds.StudyTime = "20240102", "101010"
    ds.add_new(0x00091001, "LO", "private secret")
    ds.add_new(0x00090010, "LO", "ACME PRIVATE")
    ds.Rows, ds.Columns = pixels.shape[int(frames > 1):][:2]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = (16 if bits > 8 else 8), bits, bits - 1, 0
    ds.PhotometricInterpretation = photometric
    ds.SamplesPerPixel = 3 if pixels.ndim == 3 + (frames > 1) else 1
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    if region_cm is not None:
        r = Dataset()
        r.RegionSpatialFormat, r.RegionDataType, r.RegionFlags = 1, 1, 0
        r.RegionLocationMinX0, r.RegionLocationMinY0, r.RegionLocationMaxX1, r.RegionLocationMaxY1 = REGION
        r.PhysicalUnitsXDirection, r.PhysicalUnitsYDirection = 3, 3
        r.PhysicalDeltaX, r.PhysicalDeltaY = region_cm, region_cm
        ds.SequenceOfUltrasoundRegions = Sequence([r])
    if pixel_spacing is not None:
        ds.PixelSpacing = pixel_spacing
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
