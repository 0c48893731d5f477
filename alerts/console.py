"""The alert console: one page for the patrol team, and the live feed that pushes every
incident change to the pages that are open.

The page (``alerts/console/``: plain HTML, CSS and JavaScript, no build step) asks once
for the operator's token, then shows the ranked open list and, for the incident picked,
its evidence (camera snapshots, the power and fence signals), its audit trail and the
actions allowed in its state. It reads the console API (alerts/api.py) and keeps one
streaming request open on ``/api/live``: the server reads the ``alerts`` topic
(streams/server.py) and hands each incident change to ``LiveFeed``, which writes it to
every open page as one JSON line; the page then reloads the list from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any, Iterator

PAGE_DIR = Path(__file__).with_name("console")
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
