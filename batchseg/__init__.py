"""batchseg: segment whole image collections with Dask into a queryable Zarr v3 store.

The public Python API is :data:`__all__`: :func:`run`, :func:`evaluate`, :func:`panoptic` and
:func:`import_labels` run jobs (:mod:`batchseg.api_jobs`, :mod:`batchseg.api_stores`), :func:`open` reads a store
(:mod:`batchseg.api`), and their results are frozen dataclasses (:mod:`batchseg.results`);
:func:`method` declares a function as a segmentation method (:mod:`batchseg.methods.function`).
Each name is imported on first
use, so ``import batchseg`` (and so starting the CLI) does not import zarr, pandas or Dask.

``batchseg.evaluate`` is the function, although ``batchseg/evaluate/`` is also a subpackage
(the scoring internals): the package's module class keeps the attribute pointing at the
function when the subpackage is imported (``from batchseg.evaluate.job import ...`` works as
ever; ``import batchseg.evaluate.job as m`` does not, use the ``from`` form).
"""

from __future__ import annotations

import sys
import types
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from batchseg.api import StoreView, open
    from batchseg.api_jobs import evaluate, panoptic, run
    from batchseg.api_stores import delete_evaluation, import_labels
    from batchseg.methods.function import method
    from batchseg.results import EvaluationResult, ImageFailure, ImageRecord, RunResult

_JOBS = ("run", "evaluate", "panoptic")
_STORE_JOBS = ("import_labels", "delete_evaluation")
_VIEWS = ("open", "StoreView")
_RESULTS = ("RunResult", "EvaluationResult", "ImageFailure", "ImageRecord")


def __getattr__(name: str) -> Any:
    """The public names on first use (see the module docstring)."""
    if name in _JOBS:
        from batchseg import api_jobs

        return getattr(api_jobs, name)
    if name in _STORE_JOBS:
        from batchseg import api_stores

        return getattr(api_stores, name)
    if name in _VIEWS:
        from batchseg import api

        return getattr(api, name)
    if name == "method":
        from batchseg.methods.function import method

        return method
    if name in _RESULTS:
        from batchseg import results

        return getattr(results, name)
    raise AttributeError(f"module 'batchseg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """The ``batchseg`` module: ``evaluate`` is the API function, never the subpackage."""

    @property
    def evaluate(self) -> Any:
        from batchseg import api_jobs

        return api_jobs.evaluate

    @evaluate.setter
    def evaluate(self, value: Any) -> None:
        """Importing ``batchseg.evaluate.*`` sets the subpackage here; it stays in sys.modules."""


sys.modules[__name__].__class__ = _Package

try:
    __version__ = metadata.version("batchseg")
except metadata.PackageNotFoundError:  # pragma: no cover - source tree without install
    __version__ = "0.0.0"

__all__ = [
    "EvaluationResult",
    "ImageFailure",
    "ImageRecord",
    "RunResult",
    "StoreView",
    "__version__",
    "delete_evaluation",
    "evaluate",
    "import_labels",
    "method",
    "open",
    "panoptic",
    "run",
]
