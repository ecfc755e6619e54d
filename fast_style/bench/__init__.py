"""``fast-style bench``: how fast fast_style stylizes, trains and optimises, against plain fp32 eager.

One job a module:

* :mod:`~fast_style.bench.harness`: timing in interleaved rounds, failures kept as results
  (scripts that time a question of their own reuse it);
* :mod:`~fast_style.bench.report`: timings to the JSON entry (medians, ratios, errors, best path);
* :mod:`~fast_style.bench.fixtures`: synthetic photos, networks and loss-network weights, shared
  with the tests;
* :mod:`~fast_style.bench.workloads`: what is run, at which sizes, against which baseline;
* :mod:`~fast_style.bench.run`: one run, from the environment to the JSON document.
"""

from fast_style.bench.run import run_bench
from fast_style.bench.workloads import WORKLOADS

__all__ = ["WORKLOADS", "run_bench"]
