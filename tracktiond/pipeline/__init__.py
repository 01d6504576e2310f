"""The pipeline: from the disk to the catalog, and each stage's work on what it holds.

The modules, in the order data goes through them:

- ``watch``: live filesystem events per root (watchfiles), debounced and settled, polling
  where a root cannot be watched;
- ``walk``: the directory walk (a thread, batch by batch) with ``stat`` of every entry;
- ``reconcile``: the walk compared with the catalog: new and changed files become pending rows,
  renames are re-pointed, vanished files marked missing; it reads no file;
- ``stage``: the one stage loop every stage runs on (claim from its lease queue, process in
  bounded parallel, record in batches, one ``StageEvent`` per job) and the one ``Heartbeat``
  that renews the leases of running jobs;
- ``ingest``: the first stage: hash, identify and read each pending file;
- ``analyse``: analysis of each audio stream in crash-isolated worker processes;
- ``tagging``: tag write-back of analysis results (opt-in);
- ``inbox``: the inbox flow: new files in inbox roots moved into the library (opt-in);
- ``tracklisting``: the tracklist stage: sheets and lists next to audio (and embedded sheets)
  read into versioned tracklists matched to the library;
- ``identifying``: the fingerprint stage (tracks into the index, sets' peaks kept) and the
  identify stage (sets identified against the index into "auto" tracklists);
- ``scan``: the one-shot ``tracktiond scan``: a reconcile walk and the ingest stage together.

A new stage is one module here (a ``Stage`` subclass) and one queue in ``catalog.work``; see
docs/architecture.md.
"""
