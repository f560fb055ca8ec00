"""Samples and datasets: phantom, HC18, FETAL_PLANES_DB, folder format, DICOM/ETL."""

from pcbm.data.base import SampleDataset, Subset, list_dataset_kinds, open_dataset, parse_spec, register_dataset
from pcbm.data.sample import Sample

__all__ = [
    "Sample",
    "SampleDataset",
    "Subset",
    "list_dataset_kinds",
    "open_dataset",
    "parse_spec",
    "register_dataset",
]
