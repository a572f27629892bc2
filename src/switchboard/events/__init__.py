"""The event provider feed and ``GET /search`` (``shared/providers/FEVER.md``).

The feed is polled into ``event_plans`` (``service``), and each process answers ``/search`` from
an in-memory index of the searchable plans (``index``) that follows the store's version.
"""
