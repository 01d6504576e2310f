"""The daemon process (`tracktiond run`): lifecycle, state, HTTP, metrics, systemd, logs.

Nothing but the CLI imports this package. The modules, from the process's start to what it shows:

- ``daemon``: the lifecycle: start-up order, signals, graceful stop, reload; wires the parts;
- ``state``: the run state (starting, reconciling, awaiting watchers, ready, stopping);
- ``stages``: the stage loops of the pipeline on one heartbeat, woken along the data flow;
- ``roots``: the watchers and the reconcile walks of every root;
- ``bookkeeping``: stage events counted and kept, the catalog snapshot everything reads;
- ``metrics``: the Prometheus metrics, on an injected registry;
- ``status``: the /status document;
- ``routes``: the graph query routes; ``tracklistroutes``: the tracklist read endpoints;
- ``webserver``: the small HTTP/1.1 server (h11) the routes are served by: see docs/daemon.md;
- ``sdnotify``: READY / STATUS / WATCHDOG / STOPPING to systemd;
- ``logs``: JSON or text log lines, with the path and job id of the file they are about.
"""
