"""The queue's key names in Redis, all under one prefix (one installation's key space)."""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "indexers"  # the stream's consumer group: every indexer reads in it


@dataclass(frozen=True, slots=True)
class Keys:
    stream: str  # the queued requests, one entry each (entries.py)
    queued_bytes: str  # the bytes of the queued events (counted against the high-water mark)
    queued_events: str  # the queued events (the queue's depth)
    stats: str  # the counters of every process (accepted, indexed, rejected:<reason> ...)
    dead_letters: str  # events Elasticsearch refused for their content (records.py)
    dead_letter_bytes: str
    quarantine: str  # events refused at the door in an otherwise good batch (records.py)
    quarantine_bytes: str
    probe: str  # written to learn whether Redis takes writes
    faults: str  # the faults each indexer reports (its name -> what and when)
    withdrawn: str  # the withdrawn-workers register (withdrawn.py)

    @classmethod
    def of(cls, prefix: str) -> Keys:
        return cls(
            stream=f"{prefix}:events",
            queued_bytes=f"{prefix}:queued-bytes",
            queued_events=f"{prefix}:queued-events",
            stats=f"{prefix}:stats",
            dead_letters=f"{prefix}:dead-letter",
            dead_letter_bytes=f"{prefix}:dead-letter-bytes",
            quarantine=f"{prefix}:quarantine",
            quarantine_bytes=f"{prefix}:quarantine-bytes",
            probe=f"{prefix}:write-probe",
            faults=f"{prefix}:indexer-faults",
            withdrawn=f"{prefix}:withdrawn",
        )
