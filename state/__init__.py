"""State: the partition-owned windows and alert states a worker holds in memory, and their
durable copy in Redis (one class per structure, each owning its keys and, where it needs one,
its Lua script): windows, alert states, latest scores, partition fences. The live model
pointer is ``lifecycle``'s."""

from state.alert_state import AlertState, AlertStateStore, AlertTable
from state.customer_sequence import CustomerSequence, CustomerSequenceStore, as_sequence
from state.errors import StateError
from state.latest_score import LatestScoreStore
from state.partition_fence import Claim, PartitionFence, PartitionWrite, Refusal
from state.pipeline import round_trip
from state.records import AlertRecord, WindowRecord
from state.windows import Appends, AppendStatus, Applied, Windows, WindowTable

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
    "WindowTable",
    "Windows",
    "as_sequence",
    "round_trip",
]
