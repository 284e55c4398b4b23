"""Redis state: one class per structure (windows of encoded events, latest scores, alert state,
the live model pointer), each owning its keys and, where it needs one, its Lua script."""

from state.alert_state import AlertState, AlertStateStore
from state.customer_sequence import (
    Append,
    AppendResult,
    AppendStatus,
    CustomerSequence,
    CustomerSequenceStore,
)
from state.errors import StateError
from state.latest_score import LatestScoreStore
from state.model_pointer import ANY, ModelPointer, PointerChange, PointerConflict, PointerError
from state.partition_marks import PartitionMarks
from state.pipeline import round_trip

__all__ = [
    "ANY",
    "AlertState",
    "AlertStateStore",
    "Append",
    "AppendResult",
    "AppendStatus",
    "CustomerSequence",
    "CustomerSequenceStore",
    "LatestScoreStore",
    "ModelPointer",
    "PartitionMarks",
    "PointerChange",
    "PointerConflict",
    "PointerError",
    "StateError",
    "round_trip",
]
