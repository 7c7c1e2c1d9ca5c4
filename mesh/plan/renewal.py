"""Renewal of a cluster's intermediate, planned from what the stack's last update exported."""

from __future__ import annotations

import datetime
from typing import Optional


def renewal_generation(previous: Optional[dict], early_renewal_hours: int, now: datetime.datetime) -> int:
    """Which issue of a cluster's intermediate the stack should hold.

    `previous` is what the last update exported for it ({"generation", "validUntil"}). 0 for a
    new intermediate; one more than before once `now` is inside the renewal window of the
    certificate in place, which makes the next `up` reissue it (the tls provider's own
    early-renewal flag only takes effect on a refresh, so it is not relied on).
    """
    if not previous:
        return 0
    generation = int(previous["generation"])
    valid_until = datetime.datetime.fromisoformat(str(previous["validUntil"]).replace("Z", "+00:00"))
    if now >= valid_until - datetime.timedelta(hours=early_renewal_hours):
        generation += 1
    return generation
