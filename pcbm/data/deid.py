"""De-identification of DICOM headers: the common subset of the PS3.15 basic profile.

:func:`deidentify` changes a pydicom ``Dataset`` in place (and returns it) before anything from it
is used or written. What it does, by rule and by attribute (DICOM PS3.15 Annex E, Table E.1-1,
"Basic Application Level Confidentiality Profile"):

* **Private tags**: all removed, at every nesting level.
* **Overlays and curves** (groups 60xx, 50xx): removed at every nesting level — overlays may carry
  burned-in text.
* **Person names**: every element of VR ``PN`` emptied (patient, referring/performing/reading
  physicians, operators, …), at every nesting level.
* **Attributes removed** (:data:`REMOVE`): patient address, telephone, other IDs/names, birth
  time/name, mother's birth name, age, size, weight, ethnic group, occupation, military rank,
  patient/medical history and comments, last menstrual date, pregnancy status, insurance, country/
  region of residence, institution name/address/department, station name, device serial number,
  study/series/image/performed-procedure descriptions and comments, protocol name, request and
  referenced-patient sequences, …
* **Attributes emptied** (:data:`EMPTY`, type-2 attributes kept present): patient's birth date,
  sex, accession number, study ID.
* **PatientID** becomes a pseudonym ``anon-<12 hex>`` (salted SHA-256 of the original), or empty
  when there was none — so images of one patient stay together for subject-level splits.
* **Dates and times** (VR ``DA``, ``DT``, ``TM``): emptied, or — with ``date_shift_days`` — dates
  shifted by that many days (times kept), keeping intervals within a study.
* **UIDs** (VR ``UI``, including the file meta's MediaStorageSOPInstanceUID): replaced by
  ``2.25.<int of salted SHA-256>`` — the same input UID always gives the same output UID, so
  references between files stay consistent. Class and syntax UIDs (:data:`KEEP_UIDS`) are kept.
* ``PatientIdentityRemoved`` = ``YES`` and ``DeidentificationMethod`` are set.

Kept: what describes the image, not the person — modality, manufacturer and model, transfer
syntax, the image pixel module, and ``SequenceOfUltrasoundRegions`` (pixel spacing).

Burned-in text in the pixels is *not* handled here: :func:`pcbm.data.harmonise.harmonise` blacks
out everything outside the ultrasound region ∩ the scan sector.

A salt (``salt=``) makes the pseudonyms and UIDs unguessable; without a secret salt a short
patient ID can be recovered from its hash by trying all IDs (in well under a second for an
8-character ID), so ``pcbm data etl`` refuses to run without one unless told ``--insecure-no-salt``.

Example:
    >>> import pydicom  # doctest: +SKIP
    >>> ds = deidentify(pydicom.dcmread("scan.dcm"), salt="my-secret")  # doctest: +SKIP
    >>> str(ds.PatientName)  # doctest: +SKIP
    ''
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from typing import Any

METHOD = "pcbm: PS3.15 basic profile, common subset"

REMOVE: tuple[str, ...] = (
    "PatientAddress", "PatientTelephoneNumbers", "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames",
    "PatientBirthTime", "PatientBirthName", "PatientMotherBirthName", "PatientAge", "PatientSize", "PatientWeight",
    "EthnicGroup", "Occupation", "MilitaryRank", "BranchOfService", "MedicalRecordLocator", "MedicalAlerts",
    "Allergies", "AdditionalPatientHistory", "PatientComments", "PatientState", "LastMenstrualDate",
    "PregnancyStatus", "SmokingStatus", "PatientInsurancePlanCodeSequence", "CountryOfResidence",
    "RegionOfResidence", "PatientReligiousPreference", "IssuerOfPatientID", "ResponsiblePerson",
    "ResponsibleOrganization", "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
    "InstitutionCodeSequence", "StationName", "DeviceSerialNumber", "DeviceUID", "StudyDescription",
    "SeriesDescription", "ImageComments", "StudyComments", "InterpretationText", "ProtocolName",
    "PerformedProcedureStepDescription", "PerformedProcedureStepID", "RequestedProcedureDescription",
    "RequestAttributesSequence", "ReferencedPatientSequence", "ReferencedStudySequence",
    "ReferencedPerformedProcedureStepSequence", "AdmissionID", "AdmittingDiagnosesDescription",
    "DerivationDescription", "FrameComments", "ContentCreatorName", "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers", "PhysiciansOfRecordIdentificationSequence",
    "PerformingPhysicianIdentificationSequence", "OperatorIdentificationSequence", "ScheduledPerformingPhysicianName",
    "RequestingService", "CurrentPatientLocation", "PatientInstitutionResidence", "VisitComments",
    "PersonAddress", "PersonTelephoneNumbers", "PersonTelecomInformation", "PatientTelecomInformation",
    "ReferringPhysicianIdentificationSequence", "PhysiciansReadingStudyIdentificationSequence",
    "PatientBirthDateInAlternativeCalendar", "PatientDeathDateInAlternativeCalendar", "PatientAlternativeCalendar",
    "InstitutionalDepartmentTypeCodeSequence", "ScheduledProcedureStepDescription", "ReasonForTheRequestedProcedure",
    "RequestedProcedureComments", "ImagingServiceRequestComments", "AcquisitionComments", "TextComments",
    "ConsultingPhysicianIdentificationSequence", "PerformedStationName",
    "PerformedLocation", "ScheduledStationName", "IssuerOfAdmissionIDSequence", "ServiceEpisodeDescription",
)
"""Attributes deleted wherever they occur (by DICOM keyword)."""

EMPTY: tuple[str, ...] = ("PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID")
"""Type-2 attributes kept present but emptied."""

KEEP_UIDS: frozenset[str] = frozenset({
    "SOPClassUID", "ReferencedSOPClassUID", "MediaStorageSOPClassUID", "TransferSyntaxUID", "ImplementationClassUID",
    "AffectedSOPClassUID", "RequestedSOPClassUID", "CodingSchemeUID", "ContextGroupExtensionCreatorUID",
    "ReferencedTransferSyntaxUIDInFile", "ReferencedSOPClassUIDInFile", "PrivateInformationCreatorUID",
})
"""UIDs that name a class or syntax, not an instance: kept as they are."""


def _hash(salt: str, value: str) -> bytes:
    return hashlib.sha256(f"pcbm-deid\x00{salt}\x00{value}".encode()).digest()


def pseudonym(patient_id: str, salt: str = "") -> str:
    """The pseudonym that replaces ``patient_id`` (``anon-`` + 12 hex), or "" for an empty id."""
    return f"anon-{_hash(salt, patient_id).hex()[:12]}" if patient_id.strip() else ""


def hash_uid(uid: str, salt: str = "") -> str:
    """A consistent replacement UID ``2.25.<integer>`` (at most 44 characters) for ``uid``."""
    return f"2.25.{int.from_bytes(_hash(salt, uid)[:16], 'big')}"


def _shift_date(text: str, days: int) -> str:
    try:
        d = _dt.datetime.strptime(text[:8], "%Y%m%d")
    except ValueError:
        return ""
    return (d + _dt.timedelta(days=days)).strftime("%Y%m%d") + text[8:]


def deidentify(ds: Any, salt: str = "", date_shift_days: int | None = None) -> Any:
    """Remove patient identifiers from a pydicom Dataset, in place; see the module docstring.

    Args:
        ds: a ``pydicom.Dataset`` (its ``file_meta`` too, when present).
        salt: secret mixed into the patient pseudonym and the replacement UIDs.
        date_shift_days: shift dates by this many days instead of emptying dates and times.

    Returns:
        ``ds`` itself.
    """
    original_id = str(ds.get("PatientID", "") or "")
    ds.remove_private_tags()
    for tag in [t for t in ds.keys() if (t.group & 0xFF00) in (0x5000, 0x6000)]:
        del ds[tag]

    def visit(dataset: Any, elem: Any) -> None:
        kw = elem.keyword
        if kw in REMOVE or (elem.tag.group & 0xFF00) in (0x5000, 0x6000) or elem.tag.is_private:
            del dataset[elem.tag]
        elif kw in EMPTY or elem.VR == "PN":
            elem.value = ""
        elif elem.VR in ("DA", "DT", "TM"):
            if date_shift_days is None:
                elem.value = ""
            elif elem.VR != "TM" and elem.value:
                vals = elem.value if elem.VM > 1 else [elem.value]
                shifted = [_shift_date(str(v), date_shift_days) for v in vals]
                elem.value = shifted if elem.VM > 1 else shifted[0]
        elif elem.VR == "UI" and kw not in KEEP_UIDS and elem.value:
            vals = elem.value if elem.VM > 1 else [elem.value]
            new = [hash_uid(str(v), salt) for v in vals]
            elem.value = new if elem.VM > 1 else new[0]

    ds.walk(visit)
    ds.PatientID = pseudonym(original_id, salt)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("MediaStorageSOPInstanceUID"):
        meta.MediaStorageSOPInstanceUID = hash_uid(str(meta.MediaStorageSOPInstanceUID), salt)
    return ds
