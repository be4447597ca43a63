"""The sandbox's fault switch: what fraction of calls fail, and how."""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass, field

#: 500/502/503/504: that status, nothing applied. 429: Retry-After, nothing applied.
#: slow: the request is applied after a pause longer than a client's timeout.
#: drop: the connection is closed before the request is read; nothing applied.
#: garbage: applied, answered 200 with a body that is not JSON.
#: lost: applied, then the connection is closed without an answer.
FAULT_KINDS = ("500", "502", "503", "504", "429", "slow", "drop", "garbage", "lost")
APPLIED_KINDS = frozenset({"slow", "garbage", "lost"})
#: redirect: a 302 to `redirect_to` (a moved service, a login page); nothing applied. Asked
#: for by name only (kinds or script), never part of the default mix above.
OPT_IN_KINDS = ("redirect",)
#: Where a redirect points by default: the cloud metadata service a client must never follow to.
DEFAULT_REDIRECT_TO = "http://169.254.169.254/latest/meta-data/"


@dataclass
class FaultPlan:
    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    retry_after: float = 1.0
    slow_seconds: float = 5.0
    redirect_to: str = DEFAULT_REDIRECT_TO
    vendors: tuple[str, ...] = ()  # empty: every vendor
    seed: int | None = None
    script: deque = field(default_factory=deque)  # faults for the next calls, in order
    injected: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(self.seed)
        unknown = {*self.kinds, *self.script} - {*FAULT_KINDS, *OPT_IN_KINDS}
        if unknown:
            raise ValueError(f"Unknown fault kinds: {', '.join(sorted(unknown))}")

    def pick(self, vendor: str) -> str | None:
        with self._lock:
            if self.vendors and vendor not in self.vendors:
                return None
            if self.script:
                kind = self.script.popleft()
            elif self.rate > 0 and self._random.random() < self.rate:
                kind = self._random.choice(self.kinds)
            else:
                return None
            self.injected[kind] = self.injected.get(kind, 0) + 1
            return kind

    def describe(self) -> dict:
        return {
            "rate": self.rate,
            "kinds": list(self.kinds),
            "retry_after": self.retry_after,
            "slow_seconds": self.slow_seconds,
            "redirect_to": self.redirect_to,
            "vendors": list(self.vendors),
            "script": list(self.script),
            "injected": dict(self.injected),
        }

    @classmethod
    def from_dict(cls, data: dict) -> FaultPlan:
        return cls(
            rate=float(data.get("rate", 0.0)),
            kinds=tuple(data.get("kinds") or FAULT_KINDS),
            retry_after=float(data.get("retry_after", 1.0)),
            slow_seconds=float(data.get("slow_seconds", 5.0)),
            redirect_to=str(data.get("redirect_to") or DEFAULT_REDIRECT_TO),
            vendors=tuple(data.get("vendors") or ()),
            seed=data.get("seed"),
            script=deque(data.get("script") or ()),
        )
