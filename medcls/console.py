"""What every medcls command line does around its work: medcls' messages on stderr, quiet libraries, one-line errors."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from medcls.errors import one_line_errors


@contextmanager
def console(prog: str) -> Iterator[None]:
    """What a command line of medcls does around its work: medcls' messages on stderr, any error as one line."""
    medcls_log = logging.getLogger("medcls")
    if not any(isinstance(handler, _Stderr) for handler in medcls_log.handlers):
        medcls_log.addHandler(_Stderr())  # what medcls reports: cache builds, where the report went, warnings
        medcls_log.setLevel(logging.INFO)
    with one_line_errors(prog):
        yield


class _Stderr(logging.StreamHandler):
    """Messages as they are, on whatever ``sys.stderr`` is when they come (test runners and notebooks swap it)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self) -> Any:  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class _DropTips(logging.Filter):
    """Lightning's advertisements for its cloud services, printed on every run."""

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102
        return not record.getMessage().startswith("💡 Tip")


_DROP_TIPS = _DropTips()


def quiet_libraries() -> None:
    """Silence what libraries print on every run that a user can do nothing about."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_DROP_TIPS)  # one instance: a second main() adds nothing
    # Raised inside Lightning by the newest torch.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # Run folders are claimed atomically: a checkpoint folder with files in it is one being resumed.
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    # torchmetrics' AUROC on a validation batch without one of the classes; the test report handles it per metric.
    warnings.filterwarnings("ignore", message=r"No (positive|negative) samples in targets")
