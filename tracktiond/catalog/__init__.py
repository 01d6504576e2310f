"""The catalog: the source of truth and the work queues. No database session leaves this package.

Driver errors are translated here, once (``database``): callers see ``CatalogUnavailable`` or
``CatalogConflict``, never a driver's exception. The modules, from the schema to the queries:

- ``models``: the schema as SQLAlchemy tables; ``migrate`` and ``migrations/``: alembic;
- ``database``: the engine for SQLite or PostgreSQL, and the error translation;
- ``health``: reachability: transient failures retried with backoff, and reported;
- ``leases``: the lease queue every stage's work goes through (claim, heartbeat renewal,
  release, backoff, dead); ``work``: one queue per stage (ingest, analysis, tag write-back);
- ``discovery``: a directory walk compared with the catalog: new, changed, moved, missing;
- ``results`` (with ``batch`` and ``upkeep``): ingest results applied: identity follows content;
- ``analyses``: analysis results; ``tagstate``: tag write-back outcomes;
- ``sources``: the sheets and lists tracklists are read from (the tracklist queue's rows);
  ``tracklists``: tracklist versions, entries and matches (``tracklistvalues``: their
  dataclasses); ``wordindex``: each recording's search words, which matching looks up;
- ``outbox``: the graph outbox; ``reports``: status, queue depth, duplicates, ``show``;
- ``plans``: organise plans, their journal of steps, and the inbox queue;
- ``fingerprints``: the fingerprint index (posting batches), its queues' records, the sets'
  "auto" tracklists;
- ``values``: the dataclasses callers hand in and get back; ``base``: statement helpers;
- ``store``: ``Catalog``, the one object callers hold.
"""

from tracktiond.catalog.store import Catalog

__all__ = ["Catalog"]
