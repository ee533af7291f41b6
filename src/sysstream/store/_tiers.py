"""The store's tiers: raw ticks, then coarser roll-ups, each with its own retention."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DAY", "DEFAULT_TIERS", "Tier", "check_tiers", "tiers_with_retention"]

DAY = 86400.0
_TIER_NAME = re.compile(r"[a-z0-9_]+")


@dataclass(frozen=True, slots=True)
class Tier:
    """One resolution of history. ``resolution`` 0 means raw ticks (one row per sample)."""

    name: str
    resolution: float
    retention: float

    @property
    def table(self) -> str:
        return "raw" if self.resolution == 0 else f"agg_{self.name}"


DEFAULT_TIERS: tuple[Tier, ...] = (
    Tier("raw", 0, 3600),
    Tier("1m", 60, 7 * DAY),
    Tier("15m", 900, 90 * DAY),
)


def tiers_with_retention(raw: float, minute: float, quarter: float) -> tuple[Tier, ...]:
    """:data:`DEFAULT_TIERS` with the given retentions (seconds), as the settings give them."""
    retentions = (raw, minute, quarter)
    return tuple(
        Tier(tier.name, tier.resolution, retention)
        for tier, retention in zip(DEFAULT_TIERS, retentions, strict=True)
    )


def check_tiers(tiers: Sequence[Tier]) -> None:
    """Raise ``ValueError`` unless ``tiers`` start raw and each can be rolled up from the last."""
    if not tiers or tiers[0].resolution != 0:
        raise ValueError("expected the first tier to be raw ticks (resolution 0)")
    for tier in tiers:
        if not _TIER_NAME.fullmatch(tier.name):
            raise ValueError(f"expected a tier name of [a-z0-9_], got {tier.name!r}")
        if tier.retention <= 0:
            raise ValueError(f"expected a retention > 0 for tier {tier.name}, got {tier.retention}")
    for finer, coarser in itertools.pairwise(tiers):
        if finer.resolution and (
            coarser.resolution <= finer.resolution or coarser.resolution % finer.resolution
        ):
            raise ValueError(
                f"expected tier {coarser.name}'s resolution to be a multiple of "
                f"{finer.resolution:g} s, got {coarser.resolution:g} s"
            )
        # A restart rebuilds each tier's open bucket from the finer tier's rows.
        if finer.retention < coarser.resolution:
            raise ValueError(
                f"expected tier {finer.name} to be kept at least {coarser.resolution:g} s "
                f"(one {coarser.name} bucket), got {finer.retention:g} s"
            )
