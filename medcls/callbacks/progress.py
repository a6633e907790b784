"""Progress: on a terminal, tqdm's bars redrawn a few times a second; elsewhere (a log file, a batch job, CI), lines."""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar


class LineProgress(ProgressBar):
    """One line per finished epoch with its metrics, and one every ``interval`` seconds during long loops.

    tqdm's bars, which redraw themselves with carriage returns, turn a redirected log into one endless line; the
    command line uses this progress report instead whenever its output is not a terminal.

    Args:
        interval: Seconds between the lines within a long epoch (or validation, test, prediction).
    """

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self.interval = interval
        self._enabled = True
        self._epoch: int | None = None  # the training epoch whose summary is yet to be printed
        self._started = self._last = 0.0

    def disable(self) -> None:  # noqa: D102
        self._enabled = False

    def enable(self) -> None:  # noqa: D102
        self._enabled = True

    def _print(self, line: str) -> None:
        if self._enabled and self.trainer.is_global_zero:
            print(line, file=sys.stdout, flush=True)

    def _start(self) -> None:
        self._started = self._last = time.monotonic()

    def _tick(self, description: str, done: int, total: int | float) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            of = f"/{total}" if total != float("inf") else ""
            self._print(f"{description}: batch {done}{of} ({now - self._started:.0f} s)")

    def _summarise_epoch(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """The epoch that just ended, with the metrics shown on the progress bar (its training loss included)."""
        if self._epoch is None:
            return
        metrics = {k: v for k, v in self.get_metrics(trainer, pl_module).items() if k != "v_num"}
        values = ", ".join(f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}"
                           for name, value in metrics.items())  # fmt: skip
        of = f"/{trainer.max_epochs - 1}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        elapsed = f"({time.monotonic() - self._started:.0f} s)"
        self._print(" ".join(part for part in (f"Epoch {self._epoch}{of}:", values, elapsed) if part))
        self._epoch = None

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:  # noqa: D102
        self._summarise_epoch(trainer, pl_module)  # the previous epoch's training loss is logged by now
        self._epoch = trainer.current_epoch
        self._start()

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:  # noqa: D102
        self._summarise_epoch(trainer, pl_module)

    def on_train_batch_end(  # noqa: D102
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._tick(f"Epoch {trainer.current_epoch}", batch_idx + 1, self.total_train_batches)

    def on_validation_batch_end(  # noqa: D102
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int, *_: int
    ) -> None:
        if not trainer.sanity_checking:
            self._tick("Validation", batch_idx + 1, sum(trainer.num_val_batches))

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:  # noqa: D102
        self._start()

    def on_test_batch_end(  # noqa: D102
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int, *_: int
    ) -> None:
        self._tick("Testing", batch_idx + 1, sum(trainer.num_test_batches))

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:  # noqa: D102
        self._start()

    def on_predict_batch_end(  # noqa: D102
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int, *_: int
    ) -> None:
        self._tick("Predicting", batch_idx + 1, sum(trainer.num_predict_batches))


class BarProgress(TQDMProgressBar):
    """tqdm's progress bars, as Lightning draws them, but redrawn at most every ``interval`` seconds.

    Lightning redraws a bar, with its metrics, after every batch: with a small network (the MNIST tutorial) that
    costs a few percent of each step. A bar redrawn a few times a second looks the same; the last batch of every
    loop is always drawn, so each bar ends on its true count. The command line uses this bar on a terminal.

    Args:
        interval: Seconds between two redraws of a bar.
        leave: Keep each epoch's finished bar on the terminal.
    """

    def __init__(self, interval: float = 0.25, leave: bool = False) -> None:
        super().__init__(leave=leave)
        self.interval = interval
        self._drawn: dict[str, float] = {}  # when each bar was last redrawn

    def _due(self, bar: str, done: int, total: int | float | None) -> bool:
        """Whether to redraw ``bar`` after batch ``done`` of ``total``.

        After the last batch always, otherwise once ``interval`` has passed since the bar's last redraw.
        """
        now = time.monotonic()
        if (total is None or done < total) and now - self._drawn.get(bar, -math.inf) < self.interval:
            return False
        self._drawn[bar] = now
        return True

    def on_train_batch_end(  # noqa: D102
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._due("train", batch_idx + 1, self.total_train_batches):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_batch_end(  # noqa: D102
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int, *rest: int
    ) -> None:
        if self._due("validation", batch_idx + 1, self.total_val_batches_current_dataloader):
            super().on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx, *rest)

    def on_test_batch_end(  # noqa: D102
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int, *rest: int
    ) -> None:
        if self._due("test", batch_idx + 1, self.total_test_batches_current_dataloader):
            super().on_test_batch_end(trainer, pl_module, outputs, batch, batch_idx, *rest)

    def on_predict_batch_end(  # noqa: D102
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int, *rest: int
    ) -> None:
        if self._due("predict", batch_idx + 1, self.total_predict_batches_current_dataloader):
            super().on_predict_batch_end(trainer, pl_module, outputs, batch, batch_idx, *rest)
