"""streams.worker.outputs: what an offset commit waits for before it writes the state.

The broker-level behaviour (signals delivered, state recovered after a SIGKILL) is in the
worker tests; this checks the bookkeeping on its own, with delivery futures settled by the
test as Kafka's acknowledgements would be."""

from __future__ import annotations

import asyncio

import pytest

from streams.worker import outputs


class RecordingTopic:
    """Stands in for a Faust topic (no broker): send() returns a delivery future that the
    test settles."""

    def __init__(self) -> None:
        self.deliveries: list[asyncio.Future] = []

    async def send(self, key: bytes, value: bytes) -> asyncio.Future:
        delivery = asyncio.get_running_loop().create_future()
        self.deliveries.append(delivery)
        return delivery


def test_a_commit_waits_for_every_output_and_a_refused_one_fails_every_commit():
    async def scenario() -> None:
        topic = RecordingTopic()
        await outputs.send_outputs(topic, [(b"S01", b"1"), (b"S02", b"2")])  # returns before any acknowledgement
        commit = asyncio.ensure_future(outputs.outputs_acknowledged())
        await asyncio.sleep(0.01)
        assert not commit.done()
        topic.deliveries[0].set_result(None)
        await asyncio.sleep(0.01)
        assert not commit.done()  # one of two acknowledged
        topic.deliveries[1].set_result(None)
        await asyncio.wait_for(commit, 1)
        assert not outputs._unacknowledged  # delivered outputs leave the set by themselves

        await outputs.send_outputs(topic, [(b"S01", b"3")])
        topic.deliveries[2].set_exception(RuntimeError("refused after retries"))
        for _ in range(2):  # that commit, and every one after it
            with pytest.raises(RuntimeError, match="refused"):
                await outputs.outputs_acknowledged()
        outputs._unacknowledged.clear()

    asyncio.run(scenario())
