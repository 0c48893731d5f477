"""Which partition a key belongs to: Kafka's default partitioner (murmur2), as every
Kafka client uses for keyed records. Batches of readings or pings must hold only keys of
the partition they are sent to, so that per-key state stays on one partition."""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import DefaultPartitioner

_partitioner = DefaultPartitioner()


@lru_cache(maxsize=1 << 18)
def partition_for(key: str, partitions: int) -> int:
    every = list(range(partitions))
    return _partitioner(key.encode(), every, every)
