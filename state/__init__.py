"""State: the partition-owned windows and alert states a worker holds in memory, and their
durable copy in Redis (one class per structure, each owning its keys and, where it needs one,
its Lua script): windows (and the window rule), alert states, latest scores, partition
fences. The live model pointer is ``lifecycle``'s."""

from state.alert_state import AlertState, AlertStateStore, AlertTable
from state.customer_sequence import CustomerSequence, CustomerSequenceStore, as_sequence
from state.errors import StateError
from state.latest_score import LatestScoreStore
from state.partition_fence import Claim, PartitionFence, PartitionWrite, Refusal
from state.pipeline import round_trip
from state.records import AlertRecord, WindowRecord
from state.window_batches import Appends, AppendStatus, Applied, Windows
from state.window_rule import right_padded, time_ms, window_positions
from state.window_storage import WindowStorage
from state.window_table import WindowTable

__all__ = [
    "AlertRecord",
    "AlertState",
    "AlertStateStore",
    "AlertTable",
    "AppendStatus",
    "Appends",
    "Applied",
    "Claim",
    "CustomerSequence",
    "CustomerSequenceStore",
    "LatestScoreStore",
    "PartitionFence",
    "PartitionWrite",
    "Refusal",
    "StateError",
    "WindowRecord",
    "WindowStorage",
    "WindowTable",
    "Windows",
    "as_sequence",
    "right_padded",
    "round_trip",
    "time_ms",
    "window_positions",
]
