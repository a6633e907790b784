import csv
from pathlib import Path

import pytest

from tests.scripts import run_script


def test_lr_find_plots_the_curve_and_suggests_a_rate_in_range(tutorial: list[str], tmp_path: Path, monkeypatch,
                                                               capsys) -> None:  # fmt: skip
    out = tmp_path / "lr_find"
    options = [*tutorial, "--out", str(out), "--min-lr", "1e-4", "--max-lr", "0.5", "--num-training", "15",
               # a schedule that needs the run's length, which the range test must keep finite
               "--model.init_args.lr_scheduler", "medcls.models.CosineToZero",
               "--model.init_args.lr_scheduler_interval", "step"]  # fmt: skip
    run_script("lr_find.py", options, monkeypatch)
    with open(out / "lr_find.csv") as file:
        rows = [(float(row["lr"]), float(row["loss"])) for row in csv.DictReader(file)]
    lrs = [lr for lr, _ in rows]
    assert len(rows) == 15 and lrs[0] == pytest.approx(1e-4) and lrs == sorted(lrs) and lrs[-1] <= 0.5
    suggestion = float(capsys.readouterr().out.split("suggested learning rate:")[1].split()[0])
    assert 1e-4 <= suggestion <= 0.5 and min(abs(lr / suggestion - 1) for lr in lrs) < 5e-3  # one of the rates tried
    # The temporary checkpoint is gone, and neither a run folder nor lightning_logs was created.
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "lr_find.csv", "lr_find.png"]
    assert list(Path().iterdir()) == []  # no run folder or lightning_logs in the working folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr_find", "mnist", "run"]
