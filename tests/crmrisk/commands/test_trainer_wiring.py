"""``crmrisk worker train``'s wiring: a challenger that passed the refresh gate goes live, or
with ``training.shadow_first`` onto a shadow trial (the guard promotes it later)."""

from crmrisk.commands.trainer import _go_live


class _Promoter:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def promote(self, domain, version, reason, *, expected):
        self.calls.append(("promote", domain, version, expected))

    def start_trial(self, domain, version, mode, reason, percent=0.0):
        self.calls.append(("trial", domain, version, mode))


def test_go_live__promotes_or_starts_a_shadow_trial():
    promoter = _Promoter()
    _go_live(promoter, shadow_first=False)("credit", "v0002", "gate passed", "v0001")
    _go_live(promoter, shadow_first=True)("credit", "v0003", "gate passed", "v0001")
    assert promoter.calls == [
        ("promote", "credit", "v0002", "v0001"),
        ("trial", "credit", "v0003", "shadow"),
    ]
