"""Suite-wide settings.

Hypothesis's per-example deadline is off: it times each example, and on a shared two-core
machine a slow moment fails a correct test. Speed is measured in ``benchmarks/``, never here.
"""

from hypothesis import settings

settings.register_profile("sagafsm", deadline=None)
settings.load_profile("sagafsm")

from pg_support import pg_server, pg_url  # noqa: E402, F401  (the PostgreSQL test server)
