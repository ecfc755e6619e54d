"""``fast-style bench`` (moved into a package; split into one module per job in the next commit)."""

from fast_style.bench.workloads import *  # noqa: F401,F403
