"""Makes every AnalysisPool of this Python process start the faulty analysis worker.

Python imports ``sitecustomize`` at start-up from the first ``sys.path`` entry that has one, so
this directory on ``PYTHONPATH`` (with the repository root after it: see
``tests.support.faulty_worker.environment``) swaps the pool's default worker program for
``tests/support/faulty_worker.py`` in a daemon or CLI run as a subprocess. The real worker is
what production runs: nothing in tracktiond reads a test switch.

The processes this starts (the workers themselves) inherit ``PYTHONPATH`` and import this too,
which costs them the import of the pool module and nothing else. A failure here is printed by
Python as "Error in sitecustomize" and the process goes on with the real worker; a test that
expects a fault then fails, so it cannot pass by accident.
"""

import tracktiond.analysis.pool
from tests.support import faulty_worker

tracktiond.analysis.pool.WORKER_COMMAND = faulty_worker.command()
