"""State: the partition-owned windows and alert states a worker holds in memory, and their
durable copy in Redis (one class per structure, each owning its keys and, where it needs one,
its Lua script): windows (and the window rule), alert states, latest scores, partition
fences. The live model pointer is ``lifecycle``'s."""

from crmrisk.state.alert_state import AlertState, AlertStateStore, AlertTable
from crmrisk.state.customer_sequence import CustomerSequence, CustomerSequenceStore, as_sequence
from crmrisk.state.errors import StateError
from crmrisk.state.latest_score import LatestScoreStore
from crmrisk.state.partition_fence import Claim, PartitionFence, PartitionWrite, Refusal
from crmrisk.state.pipeline import round_trip
from crmrisk.state.records import AlertRecord, WindowRecord
from crmrisk.state.window_batches import Appends, AppendStatus, Applied, Windows
from crmrisk.state.window_rule import right_padded, time_ms, window_positions
from crmrisk.state.window_storage import WindowStorage
from crmrisk.state.window_table import WindowTable

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
