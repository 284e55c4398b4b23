"""Datasets as customer event sequences: one adapter per domain, a generic spec-driven path,
and the conversion of records into model arrays (see each module's docstring for its rules).
"""

from crmrisk.training.datasets.arrays import SequenceArrays, fit_encoder, ordered_window, to_arrays
from crmrisk.training.datasets.errors import DataError, SpecError
from crmrisk.training.datasets.event_log_spec import EventLogSpec
from crmrisk.training.datasets.generic_spec import ColumnRole, GenericSpec, SplitSpec
from crmrisk.training.datasets.loader import DOMAINS, load_domain
from crmrisk.training.datasets.records import PROFILE_KIND, CustomerRecord, DomainDataset, Split
from crmrisk.training.datasets.spec_file import AnySpec, parse_spec, read_spec

__all__ = [
    "DOMAINS",
    "PROFILE_KIND",
    "AnySpec",
    "ColumnRole",
    "CustomerRecord",
    "DataError",
    "DomainDataset",
    "EventLogSpec",
    "GenericSpec",
    "SequenceArrays",
    "SpecError",
    "Split",
    "SplitSpec",
    "fit_encoder",
    "load_domain",
    "ordered_window",
    "parse_spec",
    "read_spec",
    "to_arrays",
]
