"""Several processes on CPU (gloo): DDP on one machine, two torchrun "nodes", and data preparation racing.

The runs use the demo config (synthetic fundus data, CANet on MobileNetV3) shrunk to seconds: 64 training images
(51 after the validation split), 21 test images (odd, so the distributed sampler pads one process with a repeat).
"""

import csv
import json
import math
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from medcls.cli import main
from medcls.metrics.report import evaluate_predictions, read_predictions, write_metrics

REPO = Path(__file__).parents[1]
DEMO = REPO / "configs/demo.yaml"
TIMEOUT_S = 240  # per command; a healthy one takes well under a minute on 2 CPU cores


def demo_args(folder: Path) -> list[str]:
    """The demo config, tiny, with its synthetic tree and cache in ``folder`` (the runs go to ``./runs``)."""
    return [
        "--config", str(DEMO), "--data.init_args.root", str(folder / "synthetic"),
        "--data.init_args.cache_dir", str(folder / "cache"), "--data.init_args.train", "64",
        "--data.init_args.test", "21", "--data.init_args.width", "128", "--data.init_args.image_size", "64",
        "--data.init_args.input_size", "64", "--data.init_args.batch_size", "16",
        "--data.init_args.eval_batch_size", "4",
        "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
        "--report.bootstrap_resamples", "100",
    ]  # fmt: skip


def child_env() -> dict[str, str]:
    """The environment of the child processes: one thread each (2 cores), the repository importable."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}


def run_medcls(args: list[str], cwd: Path) -> None:
    """Run ``python -m medcls ARGS`` in ``cwd`` and fail with the end of its output if it fails."""
    finished = subprocess.run(
        [sys.executable, "-m", "medcls", *args], cwd=cwd, env=child_env(), capture_output=True, text=True,
        timeout=TIMEOUT_S,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-4000:]


def report(run: Path) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The test report of a run: metrics.json and the rows of predictions.csv."""
    with open(run / "predictions.csv") as file:
        return json.loads((run / "metrics.json").read_text()), list(csv.DictReader(file))


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists as ``{"a/b/0": leaf}``."""
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in flatten(value, f"{prefix}{key}/").items()}
    if isinstance(tree, list):
        return {k: v for i, value in enumerate(tree) for k, v in flatten(value, f"{prefix}{i}/").items()}
    return {prefix.rstrip("/"): tree}


def assert_prepared_once(folder: Path) -> None:
    """One synthetic tree and one complete cache in ``folder``, and no partial or temporary leftovers."""
    trees = os.listdir(folder / "synthetic")
    assert trees == ["idrid-train64-test21-128px-seed0"], trees
    assert os.listdir(folder / "synthetic" / trees[0]) == ["B. Disease Grading"]
    caches = os.listdir(folder / "cache")
    assert len(caches) == 1 and ".partial-" not in caches[0], caches
    manifest = json.loads((folder / "cache" / caches[0] / "manifest.json").read_text())
    assert len(manifest["sources"]) == 64 + 21 and not manifest["skipped"]


def train_images(run: Path) -> int:
    """How many images the run trained on, from its splits.csv."""
    with open(run / "splits.csv") as file:
        return sum(row["split"] == "train" for row in csv.DictReader(file))


def steps_per_epoch(images: int, processes: int, batch_size: int = 16) -> int:
    """Optimizer steps per epoch when the distributed sampler shares ``images`` among ``processes``."""
    return math.ceil(math.ceil(images / processes) / batch_size)


def test_ddp_fit_on_two_processes_then_ddp_test_reports_what_one_process_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DDP fit (2 CPU processes, gloo) from a fresh folder: the data is generated and cached once, one run folder;
    testing its checkpoint on 2 processes predicts every image once, as one process does, up to float rounding.

    A forward pass on two processes may differ from one process in the last bits (other batch compositions, other
    kernels), which can flip near-ties of an untrained model's scores: what is guaranteed is equal predictions within
    float tolerance, and each report exactly what its own predictions.csv gives."""
    monkeypatch.chdir(tmp_path)
    ddp = ["--config", str(REPO / "configs/presets/ddp.yaml"), "--trainer.devices", "2", "--trainer.accelerator", "cpu",
           "--trainer.sync_batchnorm", "false"]  # the preset on CPU, where torch has no SyncBatchNorm  # fmt: skip
    run_medcls(["fit", *demo_args(tmp_path), *ddp], tmp_path)

    assert_prepared_once(tmp_path)
    runs = sorted(Path("runs/demo").iterdir())
    assert [run.name for run in runs] == ["version_0"]
    run = runs[0]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert (run / "config.yaml").is_file()
    last = torch.load(run / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 0
    assert last["global_step"] == steps_per_epoch(train_images(run), processes=2)

    checkpoint = str(run / "checkpoints/best.ckpt")
    test = ["test", *demo_args(tmp_path), "--ckpt_path", checkpoint]
    run_medcls([*test, *ddp, "--trainer.logger.init_args.name", "ddp"], tmp_path)
    main([*test, "--trainer.logger.init_args.name", "single"])

    single_metrics, single_rows = report(Path("runs/single/version_0"))
    ddp_metrics, ddp_rows = report(Path("runs/ddp/version_0"))
    assert len(ddp_rows) == 21 and len({row["id"] for row in ddp_rows}) == 21
    assert [(row["id"], row["dr"], row["dme"]) for row in ddp_rows] == [
        (row["id"], row["dr"], row["dme"]) for row in single_rows
    ]
    probabilities = [name for name in single_rows[0] if "_prob_" in name]
    for ddp_row, single_row in zip(ddp_rows, single_rows, strict=True):
        for name in probabilities:
            assert float(ddp_row[name]) == pytest.approx(float(single_row[name]), abs=1e-5), (ddp_row["id"], name)
    assert ddp_metrics["n"] == single_metrics["n"] == 21
    assert {"dr", "dme", "joint_accuracy"} <= ddp_metrics.keys()
    assert flatten(ddp_metrics).keys() == flatten(single_metrics).keys()
    views = last["hyper_parameters"]["binary_views"]
    for name in ("single", "ddp"):
        assert_report_is_its_predictions(Path(f"runs/{name}/version_0"), views, resamples=100)
    # The loss is Lightning's mean over the processes' means, repeat included: 22 images where there are 21.
    assert ddp_metrics["loss"] == pytest.approx(single_metrics["loss"], rel=0.05)


def assert_report_is_its_predictions(run: Path, views: dict, resamples: int) -> None:
    """The run's metrics.json is exactly what its predictions.csv gives."""
    metrics, _ = report(run)
    _, probabilities, labels = read_predictions(run / "predictions.csv")
    recorded = {"operating_points": metrics["operating_points"], "ordinal_tasks": metrics["ordinal_tasks"]}
    again = evaluate_predictions(probabilities, labels, binary_views=views, n_resamples=resamples, **recorded)
    metrics.pop("loss")
    write_metrics(run / "recomputed.json", again)
    assert metrics == json.loads((run / "recomputed.json").read_text())


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_torchrun_nodes_on_one_machine_fit_the_demo_to_the_end(tmp_path: Path) -> None:
    """``torchrun --nnodes 2 --nproc_per_node 1``, node ranks 0 and 1 on 127.0.0.1 in one folder (a shared file
    system): both are local rank 0 and prepare the data at once; both finish, training forms one process group
    (the steps of a 2-process sampler) to max_epochs, and there is one run folder, one tree and one cache."""
    port = free_port()
    fit = ["-m", "medcls", "fit", *demo_args(tmp_path), "--trainer.num_nodes", "2",
           "--trainer.devices", "1", "--trainer.accelerator", "cpu", "--trainer.strategy", "ddp"]  # fmt: skip
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
                "--master_addr", "127.0.0.1", "--master_port", str(port)]  # fmt: skip
    nodes, logs = [], []
    try:
        for node_rank in (0, 1):
            logs.append(open(tmp_path / f"node{node_rank}.log", "w+"))  # noqa: SIM115 (closed in finally)
            command = [*torchrun, "--node_rank", str(node_rank), *fit]
            # A session of its own, so that the finally block can kill torchrun and its worker together.
            nodes.append(subprocess.Popen(command, cwd=tmp_path, env=child_env(), stdout=logs[-1],
                                          stderr=subprocess.STDOUT, start_new_session=True))  # fmt: skip
        deadline = time.monotonic() + TIMEOUT_S
        try:
            codes = [node.wait(timeout=max(1.0, deadline - time.monotonic())) for node in nodes]
        except subprocess.TimeoutExpired:  # a hang: fail with what the nodes printed
            codes = [node.poll() for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()
        outputs = []
        for log in logs:
            log.seek(0)
            outputs.append(log.read())
            log.close()
    assert codes == [0, 0], "\n\n".join(output[-4000:] for output in outputs)
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in outputs[1]

    assert_prepared_once(tmp_path)
    runs = sorted((tmp_path / "runs/demo").iterdir())
    assert [run.name for run in runs] == ["version_0"]
    last = torch.load(runs[0] / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 0  # max_epochs: 1
    assert last["global_step"] == steps_per_epoch(train_images(runs[0]), processes=2)  # one group of 2, not 2 of 1
    assert (runs[0] / "checkpoints/best.ckpt").is_file() and (runs[0] / "config.yaml").is_file()


def _prepare(folder: Path, start: Any) -> None:
    """Prepare the tiny demo data in ``folder`` once ``start`` (a barrier) lets every process go."""
    from medcls.data import SyntheticFundusDataModule

    data = SyntheticFundusDataModule(
        folder / "synthetic", train=64, test=21, width=128, cache_dir=folder / "cache", image_size=64,
        preprocess_workers=1,
    )  # fmt: skip
    start.wait(timeout=60)
    data.prepare_data()


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_processes_preparing_the_same_data_at_once_leave_one_tree_and_one_cache(tmp_path: Path) -> None:
    """Two processes released together generate the synthetic tree and build the cache concurrently (as the
    local rank 0 of several nodes on a shared file system do): both succeed, leaving one of each, no leftovers."""
    context = multiprocessing.get_context("fork")  # no re-import: the children only use numpy and Pillow
    start = context.Barrier(2)
    workers = [context.Process(target=_prepare, args=(tmp_path, start)) for _ in range(2)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=TIMEOUT_S)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join()
    assert [worker.exitcode for worker in workers] == [0, 0]
    assert_prepared_once(tmp_path)
