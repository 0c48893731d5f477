"""The live feed of incident changes to the open console pages (``GET /api/live``)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Iterator

HEARTBEAT_S = 15.0  # an idle line every so often, so a dead connection is noticed


class LiveFeed:
    """Fan-out of incident changes to the open console pages, each with its own queue.

    A page that cannot keep up is not allowed to hold memory or slow the others: when
    its queue is full it is emptied and told to resync (reload the whole list)."""

    def __init__(self, queue_size: int = 256):
        self.queue_size = queue_size
        self.pages: set[asyncio.Queue] = set()

    def publish(self, event: dict[str, Any]) -> None:
        for queue in self.pages:
            if queue.full():
                _replace_all(queue, {"type": "resync"})
            else:
                queue.put_nowait(event)

    def close(self) -> None:
        """The server is stopping: every open page's request ends (the page reconnects)."""
        for queue in self.pages:
            _replace_all(queue, None)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue]:
        queue: asyncio.Queue = asyncio.Queue(maxsize=self.queue_size)
        self.pages.add(queue)
        try:
            yield queue
        finally:
            self.pages.discard(queue)


def _replace_all(queue: asyncio.Queue, item: Any) -> None:
    """What a page has not read yet, dropped for ``item``."""
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(item)


def incident_event(incident: dict[str, Any]) -> dict[str, Any]:
    """What a page needs to know of a change: which incident, and enough to alert on it."""
    return {"type": "incident", **{k: incident.get(k) for k in (
        "incident_id", "site_id", "state", "severity", "score", "summary")}}
