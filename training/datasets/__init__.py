"""Datasets as customer event sequences: one adapter per domain, a generic spec-driven path,
and the conversion of records into model arrays (see each module's docstring for its rules).
"""

from training.datasets.arrays import SequenceArrays, fit_encoder, ordered_window, to_arrays
from training.datasets.generic import ColumnRole, GenericSpec, SplitSpec, read_spec
from training.datasets.loader import DOMAINS, load_domain
from training.datasets.records import PROFILE_KIND, CustomerRecord, DomainDataset, Split

__all__ = [
    "DOMAINS",
    "PROFILE_KIND",
    "ColumnRole",
    "CustomerRecord",
    "DomainDataset",
    "GenericSpec",
    "SequenceArrays",
    "Split",
    "SplitSpec",
    "fit_encoder",
    "load_domain",
    "ordered_window",
    "read_spec",
    "to_arrays",
]
