"""A tiny ultrasound DICOM writer shared by the tests (pydicom): identifiers in the header, an
optional ultrasound region, burned-in "text" above it. Importable from any test (tests/ is on the path
through its conftest.py).

:func:`phi_frame` draws a fan-shaped scan sector with patient data burned in (a top band and the
four corners of the region rectangle, outside the fan); ``make_dicom(..., phi=True)`` adds patient
data in private tags, nested sequences and overlays; :data:`PHI` lists every string to search for.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

H, W = 64, 80
REGION = (10, 8, 69, 59)  # x0, y0, x1, y1 inclusive
TEXT = (slice(0, 4), slice(2, 30))  # burned-in "text" above the region
NAME, PID = "DOE^JANE", "PID12345"
BIRTH, ADDRESS, INSTITUTION = "19900101", "1 Main St", "St Elsewhere"
OPERATOR, PHYSICIAN, SERIAL, ACCESSION = "SONO^A", "HOUSE^G", "SN999", "ACC77"
PHI = (NAME, PID, BIRTH, ADDRESS, INSTITUTION, OPERATOR, PHYSICIAN, SERIAL, ACCESSION, "DOE", "JANE", "Elsewhere",
       "HOUSE", "SONO", "Main St")
"""Every identifying string the PHI DICOMs carry (in tags, private tags, sequences, overlays)."""

# phi_frame: a 160 x 200 frame, a fan of radius 130 from (100, 20), region rectangle around it
FH, FW = 160, 200
FAN_APEX, FAN_RADIUS, FAN_ANGLES = (100, 20), 130, (50, 130)
PHI_REGION = (10, 14, 189, 155)  # x0, y0, x1, y1 inclusive; the fan's bounding box is inside
WHOLE_FRAME = (0, 0, FW - 1, FH - 1)
BURNED_IN = (  # (text, bottom-left corner, scale): a band above the region and the region's 4 corners
    ("DOE^JANE PID12345 19900101", (4, 10), 0.7),
    ("DOE", (13, 32), 1.0),
    ("PID12345", (130, 30), 0.8),
    ("1990", (13, 152), 0.8),
    ("JANE", (158, 152), 0.8),
)


def us_image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((H, W), np.uint8)
    x0, y0, x1, y1 = REGION
    img[y0:y1 + 1, x0:x1 + 1] = rng.integers(40, 220, (y1 - y0 + 1, x1 - x0 + 1))
    img[TEXT] = 255
    return img


def fan_mask() -> np.ndarray:
    """The fan of :func:`phi_frame` as a bool (FH, FW) mask."""
    import cv2

    fan = np.zeros((FH, FW), np.uint8)
    cv2.ellipse(fan, FAN_APEX, (FAN_RADIUS, FAN_RADIUS), 0, *FAN_ANGLES, 1, -1)
    return fan > 0


def phi_frame(seed: int = 0) -> np.ndarray:
    """A (FH, FW) uint8 frame: speckle 40-220 in the fan, patient data burned in (white) outside it, 0 elsewhere."""
    import cv2

    fan = fan_mask()
    img = np.zeros((FH, FW), np.uint8)
    img[fan] = np.random.default_rng(seed).integers(40, 221, int(fan.sum()))
    for text, org, scale in BURNED_IN:
        cv2.putText(img, text, org, cv2.FONT_HERSHEY_PLAIN, scale, 255, 1)
    return img


def text_pixels(frame: np.ndarray) -> np.ndarray:
    """Where :func:`phi_frame` burned text in (non-zero outside the fan), dilated by a pixel."""
    import cv2

    text = ((frame > 0) & ~fan_mask()).astype(np.uint8)
    return cv2.dilate(text, np.ones((3, 3), np.uint8)) > 0


def _add_phi(ds: Dataset) -> None:
    """Patient data where the PS3.15 basic profile must find it: private tags and sequences, nested
    names and institutions, overlays, comments."""
    ds.PatientComments, ds.PerformingPhysicianName, ds.NameOfPhysiciansReadingStudy = NAME, PHYSICIAN, PHYSICIAN
    ds.InstitutionAddress, ds.StationName, ds.StudyDescription = ADDRESS, INSTITUTION, f"scan of {NAME}"
    ds.add_new(0x00091002, "LO", PID)
    ds.add_new(0x00091003, "PN", NAME)
    inner = Dataset()
    inner.PatientName, inner.InstitutionName = NAME, INSTITUTION
    ds.add_new(0x00091004, "SQ", Sequence([inner]))  # a private sequence
    other = Dataset()
    other.PatientID, other.IssuerOfPatientID = PID, INSTITUTION
    ds.OtherPatientIDsSequence = Sequence([other])
    ref = Dataset()
    ref.PersonAddress, ref.InstitutionName, ref.InstitutionAddress = ADDRESS, INSTITUTION, ADDRESS
    ref.PersonTelephoneNumbers = "555-0100"
    ds.ReferringPhysicianIdentificationSequence = Sequence([ref])
    step = Dataset()  # a kept sequence with identifying items inside
    step.PerformingPhysicianName, step.InstitutionName, step.PatientBirthDate = PHYSICIAN, INSTITUTION, BIRTH
    step.OperatorsName, step.StudyDate = OPERATOR, BIRTH
    ds.ProcedureCodeSequence = Sequence([step])
    ds.add_new(0x60000022, "LO", NAME)  # OverlayDescription
    ds.add_new(0x60003000, "OW", b"DOE^JANE")  # OverlayData
    ds.add_new(0x50000022, "LO", NAME)  # a curve (retired)


def make_dicom(path: Path, pixels: np.ndarray | None = None, region_cm: float | None = 0.02,
               pixel_spacing: list[float] | None = None, photometric: str = "MONOCHROME2", frames: int = 1,
               bits: int = 8, *, region: tuple[int, int, int, int] | None = None, phi: bool = False,
               edit: Callable[[Dataset], None] | None = None) -> Path:
    """Write a small ultrasound DICOM with patient data in its header.

    Args:
        region: the ultrasound region (x0, y0, x1, y1 inclusive), default :data:`REGION`.
        phi: add patient data in private tags, sequences and overlays (:func:`_add_phi`).
        edit: change the dataset just before it is saved (break it, drop the pixels, …).
    """
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
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = NAME, PID, BIRTH
    ds.PatientAddress, ds.InstitutionName, ds.ReferringPhysicianName = ADDRESS, INSTITUTION, PHYSICIAN
    ds.OperatorsName, ds.DeviceSerialNumber, ds.AccessionNumber = OPERATOR, SERIAL, ACCESSION
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
        r.RegionLocationMinX0, r.RegionLocationMinY0, r.RegionLocationMaxX1, r.RegionLocationMaxY1 = region or REGION
        r.PhysicalUnitsXDirection, r.PhysicalUnitsYDirection = 3, 3
        r.PhysicalDeltaX, r.PhysicalDeltaY = region_cm, region_cm
        ds.SequenceOfUltrasoundRegions = Sequence([r])
    if pixel_spacing is not None:
        ds.PixelSpacing = pixel_spacing
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    if phi:
        _add_phi(ds)
    if edit is not None:
        edit(ds)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
