import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from medcls.cli import main
from tests.conftest import write_mnist

CONFIG = Path(__file__).parents[1] / "configs/mnist/tutorial.yaml"


def report(run: Path) -> tuple[dict, list[dict[str, str]]]:
    with open(run / "predictions.csv") as file:
        return json.loads((run / "metrics.json").read_text()), list(csv.DictReader(file))


def test_two_processes_report_exactly_what_one_process_reports(tmp_path: Path, monkeypatch) -> None:
    """DDP on CPU (gloo): 101 test images, so the distributed sampler pads one process with a repeat."""
    monkeypatch.chdir(tmp_path)
    root = write_mnist(tmp_path / "mnist", train=300, test=101)
    common = ["--config", str(CONFIG), "--data.root", str(root), "--data.download", "false", "--data.val_size", "60",
              "--data.eval_batch_size", "16", "--trainer.enable_progress_bar", "false",
              "--report.bootstrap_resamples", "100"]  # fmt: skip
    main(["fit", *common, "--trainer.max_epochs", "1"])
    checkpoint = str(next(Path("runs/mnist-tutorial").glob("version_0/checkpoints/best.ckpt")))
    main(["test", *common, "--ckpt_path", checkpoint, "--trainer.logger.init_args.name", "single"])
    two = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
    command = [sys.executable, "-m", "medcls", "test", *common, "--ckpt_path", checkpoint, *two,
               "--trainer.logger.init_args.name", "ddp"]  # fmt: skip
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]

    single_metrics, single_rows = report(Path("runs/single/version_0"))
    ddp_metrics, ddp_rows = report(Path("runs/ddp/version_0"))
    assert len(ddp_rows) == 101 and ddp_rows == single_rows
    assert ddp_metrics["n"] == 101
    assert ddp_metrics["digit"].keys() == single_metrics["digit"].keys()
    for metric, result in single_metrics["digit"].items():
        assert ddp_metrics["digit"][metric] == pytest.approx(result, nan_ok=True), metric
