"""The alert console: one page for the patrol team, its HTTP API, and the live feed that
pushes every incident change to the pages that are open.

- ``static/`` — the page: plain HTML, CSS and JavaScript, no build step. It asks once for
  the operator's token, then shows the ranked open list and, for the incident picked, its
  evidence (camera snapshots, the power and fence signals), its audit trail and the
  actions allowed in its state;
- ``api`` — the console API the page reads (and the page and its files);
- ``live`` — ``LiveFeed``: the server reads the ``alerts`` topic (streams.ops.server) and
  hands each incident change to it, which writes it to every open page as one JSON line;
  the page then reloads the list from the store.
"""
