import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from medcls.runs import RunFolder

REPO = Path(__file__).parents[1]


def _claim_after(barrier, experiment: Path, queue) -> None:
    barrier.wait(timeout=30)
    queue.put(RunFolder.claim(experiment).version)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_processes_claiming_at_once_get_distinct_folders(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    experiment = tmp_path / "runs" / "demo"
    (experiment / "version_0").mkdir(parents=True)  # an earlier run
    (experiment / "notes").mkdir()  # not a run
    barrier, queue = context.Barrier(6), context.Queue()
    workers = [context.Process(target=_claim_after, args=(barrier, experiment, queue)) for _ in range(6)]
    for worker in workers:
        worker.start()
    versions = sorted(queue.get(timeout=30) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
    assert versions == [1, 2, 3, 4, 5, 6]
    assert sorted(p.name for p in experiment.iterdir()) == ["notes"] + [f"version_{n}" for n in range(7)]


def test_release_removes_what_the_claim_created_unless_a_checkpoint_was_saved(tmp_path: Path) -> None:
    experiment = tmp_path / "runs" / "demo"
    claimed = RunFolder.claim(experiment)
    assert claimed.path == experiment / "version_0" and claimed.first_created == tmp_path / "runs"
    (claimed.path / "config.yaml").write_text("x")
    claimed.release()
    assert list(tmp_path.iterdir()) == []  # runs/ was new: it goes too

    first, second = RunFolder.claim(experiment), RunFolder.claim(experiment)
    assert (first.version, second.version) == (0, 1) and second.first_created == second.path
    (second.path / "checkpoints").mkdir()
    (second.path / "checkpoints" / "best.ckpt").write_bytes(b"weights")
    second.release()  # a checkpoint worth keeping: nothing removed
    first.release()  # the experiment still holds the second run: only the first goes
    assert sorted(p.name for p in experiment.iterdir()) == ["version_1"]


def test_two_fits_started_at_once_in_one_folder_write_two_runs(mnist_root: Path, tmp_path: Path) -> None:
    """The issue's case: both took version_0 and wrote over each other's checkpoints, events and config."""
    args = ["--config", str(REPO / "configs/mnist/tutorial.yaml"), "--data.root", str(mnist_root),
            "--data.val_size", "100", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
            "--trainer.limit_val_batches", "1"]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    fits = [
        subprocess.Popen(
            [sys.executable, "-m", "medcls", "fit", *args, "--model.optimizer.lr", lr],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for lr in ("0.01", "0.02")
    ]
    errors = [fit.communicate(timeout=300)[1] for fit in fits]
    assert [fit.returncode for fit in fits] == [0, 0], errors
    runs = sorted((tmp_path / "runs/mnist-tutorial").iterdir())
    assert [run.name for run in runs] == ["version_0", "version_1"]
    lrs = set()
    for run in runs:
        assert {p.name for p in (run / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}
        assert len(list(run.glob("events.out.tfevents.*"))) == 1
        lrs.add(yaml.safe_load((run / "config.yaml").read_text())["model"]["init_args"]["optimizer"]["init_args"]["lr"])
    assert lrs == {0.01, 0.02}  # each run kept its own config
