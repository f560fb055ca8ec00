"""The service's response bodies as pydantic models: what the OpenAPI document (``/docs``) shows."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["standard", "close_to_standard", "not_a_known_plane"]


class ModelIdentity(BaseModel):
    """Which model answered: every record names it."""

    name: str
    version: str | None = Field(None, description="the pcbm version that exported the package")
    sha256: str | None = Field(None, description="the weights' digest (or of the package's files)")
    source: str | None = None


class InputInfo(BaseModel):
    """What the service read from the upload (no image data, no file name, no DICOM header field but the spacing)."""

    kind: Literal["PNG", "JPEG", "DICOM"]
    width: int
    height: int
    pixel_spacing_mm: float | None = None
    spacing_source: str | None = Field(None, description="'form field', 'DICOM header (...)' or null")
    notes: list[str] = Field(default_factory=list, description="conversions made while reading (e.g. RGB to gray)")


class NavigationOut(BaseModel):
    """The next probe move toward a standard plane (``pcbm.navigation.hint``; learnt on the probe-pose
    phantom, untested on real scans)."""

    move: str = Field(description="stay, along±, across±, tilt± or rotate±")
    target_plane: str
    reason: str = Field(description="the move and why, in concept words")
    arrow: str
    confidence: float


class PredictionRecord(BaseModel):
    """The Prediction record (``pcbm predict``'s JSON) with the model's identity and the input read."""

    model_config = ConfigDict(extra="allow")

    image: str
    plane: str
    plane_probs: dict[str, float]
    status: Status
    standard: bool
    properties: dict[str, float | None] = Field(description="probability; mm for lengths; null where not applicable")
    measurements: dict[str, dict[str, Any]]
    missing_criteria: list[str]
    status_reason: str | None = None
    reliability: dict[str, Any] | None = None
    navigation: NavigationOut | None = Field(None, description="only with navigate=true")
    model: ModelIdentity
    input: InputInfo


class DecisionOut(BaseModel):
    plane: str
    status: Status
    confidence: float
    missing: list[str]
    plane_probs: dict[str, float]
    properties: dict[str, float | None]

    model_config = ConfigDict(extra="allow")


class InterventionOut(BaseModel):
    """The decision before and after the corrections (``pcbm intervene --json``)."""

    model_config = ConfigDict(extra="allow")

    corrections: list[str]
    before: DecisionOut
    after: DecisionOut
    changed: bool
    model: ModelIdentity
    input: InputInfo


class EnergyOut(BaseModel):
    method: str = Field(description="'rapl' (measured) or 'cpu-time estimate'")
    description: str
    inferences: int
    joules: float
    joules_per_1000_inferences: float | None
    watts_per_core: float | None = Field(None, description="the stated figure of the estimate")


class ModelOut(BaseModel):
    """The model card: identity, architecture, training data, metrics, ontology, thresholds, energy."""

    model_config = ConfigDict(extra="allow")

    identity: ModelIdentity
    card: dict[str, Any]
    metrics: dict[str, Any] | None
    ontology: dict[str, Any]
    thresholds: dict[str, Any]
    input: dict[str, Any]
    reference: dict[str, Any] | None = Field(None, description="the reference data drift is measured against")
    energy: EnergyOut


class Health(BaseModel):
    ok: bool
    uptime_s: float
    pid: int


class Ready(BaseModel):
    ready: bool
    model: ModelIdentity | None = None
    reason: str | None = None


class ErrorOut(BaseModel):
    """Every refusal: the HTTP status and one line naming the problem."""

    error: str
    status: int


class ConceptDrift(BaseModel):
    model_config = ConfigDict(extra="allow")

    n: int
    psi: float | None
    level: str | None
    ks_statistic: float | None
    ks_pvalue: float | None


class DriftOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    n: int
    window_size: int
    plane_mix: dict[str, Any]
    concepts: dict[str, ConceptDrift]
    max_concept_psi: float | None
    max_concept_level: str | None
    method: str
