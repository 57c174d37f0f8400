"""Elasticsearch's disk monitor driven through its cluster settings: watermarks given as free space, so
a test puts a node at its flood stage (above the disk's free space) or gives it room again (below)."""

from __future__ import annotations

WATERMARKS = (
    "cluster.routing.allocation.disk.threshold_enabled",
    "cluster.routing.allocation.disk.watermark.low",
    "cluster.routing.allocation.disk.watermark.high",
    "cluster.routing.allocation.disk.watermark.flood_stage",
    "cluster.info.update.interval",
)


def free_space_watermarks(flood: str) -> dict[str, str]:
    """The monitor on, checking every 10 s (its shortest), low > high > flood, e.g. flood="1000tb"."""
    amount, unit = int(flood[:-2]), flood[-2:]
    return dict(zip(WATERMARKS, ["true", f"{amount + 2}{unit}", f"{amount + 1}{unit}", flood, "10s"], strict=True))


def unset() -> dict[str, None]:
    """Every one of those settings back to Elasticsearch's default."""
    return dict.fromkeys(WATERMARKS)
