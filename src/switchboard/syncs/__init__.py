"""Syncs: pulling a connection's data into the hub's store, once at a time per connection.

A provider brings a :class:`Syncer` (``Provider.syncer``: the event feed, a CRM's contacts). The
hub then gives every connection of that provider a schedule (its interval),
``POST /connections/{name}/sync``, ``GET /connections/{name}/runs`` and ``switchboard sync NAME``;
each run is a ``sync_runs`` row.

Runs of one connection never overlap: jobs use the key ``sync:<connection>`` (the queue runs
jobs sharing a key one at a time, and coalesces pending ones), and a run started outside the
queue (the CLI) refuses to start while another is recorded as running.
"""

from switchboard.syncs.registry import SyncContext, Syncer, SyncResult

__all__ = ["SyncContext", "SyncResult", "Syncer"]
