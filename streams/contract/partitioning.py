"""Which partition a key belongs to: Kafka's default partitioner (murmur2), as every
Kafka client uses for keyed records. Batches of readings or pings must hold only keys of
the partition they are sent to, so that per-key state stays on one partition."""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import DefaultPartitioner

from streams.contract.records import RecordError

_partitioner = DefaultPartitioner()


@lru_cache(maxsize=1 << 18)
def partition_for(key: str, partitions: int) -> int:
    every = list(range(partitions))
    return _partitioner(key.encode(), every, every)


def check_home(key: str, partitions: int, partition: int, what: str) -> None:
    """RecordError unless ``key`` belongs to ``partition`` (a batch mixing partitions, or a
    record keyed by something else, would split its state across workers)."""
    home = partition_for(key, partitions)
    if home != partition:
        raise RecordError(f"{what} {key} belongs to partition {home}, not {partition}: key single records "
                          f"by {what} and batch only {what}s of one partition")
