"""Training networks: the trainer's recipe and everything only training needs.

:mod:`~fast_style.training.trainer` runs the loop for every kind of network; each kind brings its
step (forward + loss, validation, model-file metadata) as a task in the module named after it
(:mod:`~fast_style.training.johnson2016`, :mod:`~fast_style.training.multi_style`,
:mod:`~fast_style.training.adain`), registered in :mod:`~fast_style.training.tasks` under the
``architecture`` name of its network in :mod:`fast_style.networks`. Around them: the photos
(:mod:`~fast_style.training.data`), the run's checkpoints (:mod:`~fast_style.training.state`), its
log (:mod:`~fast_style.training.log`), the torchrun job (:mod:`~fast_style.training.distributed`) and
the stability term (:mod:`~fast_style.training.stability`). Nothing below this package imports it
(docs/layers.md).
"""

from fast_style.training import adain, johnson2016, multi_style, wct  # noqa: F401  (each registers its task)
