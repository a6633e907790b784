"""The catalogue of bad inputs and faults, run through the ``medcls`` command as a user meets them.

Every case asserts one ``medcls: error:`` line naming the culprit, a non-zero exit status, no traceback, and that
the files around it (the data, the cache, earlier runs) are exactly as they were: a refused command writes nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from PIL import Image

from medcls.cli import command
from medcls.errors import DEBUG_VARIABLE
from medcls.nets import TutorialNet
from medcls.synthetic.digits import write_idx
from tests.scripts import run_script

REPO = Path(__file__).parents[1]
TUTORIAL = REPO / "configs/mnist/tutorial.yaml"
DEMO = REPO / "configs/demo.yaml"

Refuse = Callable[..., str]


def snapshot(root: Path) -> dict[str, tuple[int, int] | None]:
    """Every folder (``None``) and file (size, modification time) under ``root``."""
    return {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns) if path.is_file() else None
        for path in sorted(root.rglob("*"))
    }


def all_finite(state: dict[str, torch.Tensor]) -> bool:
    return all(tensor.isfinite().all() for tensor in state.values() if tensor.is_floating_point())


def run(args: list[str]) -> tuple[int, str]:
    """Run ``medcls ARGS`` as the console command does: its exit status and its error line ("" if none)."""
    try:
        command(args)
    except SystemExit as exit_:
        return (1, exit_.code) if isinstance(exit_.code, str) else (exit_.code or 0, "")
    return 0, ""


@pytest.fixture
def refuse(tmp_path: Path, capsys: pytest.CaptureFixture) -> Refuse:
    """``refuse(args, *also_watched, but=prefix)``: run a command that must be refused; return its message.

    The files under ``tmp_path`` and ``also_watched`` must be as they were, except those under ``but``.
    """

    def refused(args: list[str], *watched: Path, but: str | None = None) -> str:
        roots = [tmp_path, *watched]

        def files() -> list[dict]:
            return [{k: v for k, v in snapshot(root).items() if but is None or not k.startswith(but)} for root in roots]

        before = files()
        capsys.readouterr()
        status, message = run(args)
        err = capsys.readouterr().err
        assert status == 1, f"exit status {status}, expected 1; stderr: {err[-2000:]}"
        assert message.startswith("medcls: error: ") and "\n" not in message, message
        assert "Traceback" not in err, err[-3000:]
        assert files() == before, "the refused command changed files"
        return message.removeprefix("medcls: error: ")

    return refused


@pytest.fixture
def tutorial(tutorial: list[str]) -> list[str]:
    """The tutorial on the small MNIST (conftest), without progress output."""
    return [*tutorial, "--trainer.enable_progress_bar", "false"]


@pytest.fixture
def trained(tutorial: list[str], tutorial_run: Path) -> Path:
    """The best checkpoint of one epoch of the tutorial, in ``runs/mnist-tutorial/version_0``: a copy of the
    session's run (conftest), as if the test had run ``medcls fit`` itself."""
    shutil.copytree(tutorial_run, Path("runs/mnist-tutorial/version_0"))
    return Path("runs/mnist-tutorial/version_0/checkpoints/best.ckpt")


def fundus(tmp_path: Path, tree: Path, *options: str) -> list[str]:
    """A small timm net on a synthetic IDRiD tree at 48 px, one epoch, no progress output."""
    return ["--config", str(REPO / "configs/idrid/joint_baseline.yaml"), "--data.root", str(tree),
            "--data.cache_dir", str(tmp_path / "cache"), "--data.image_size", "48", "--data.batch_size", "8",
            "--data.num_workers", "0", "--data.preprocess_workers", "1",
            "--data.train_transforms", "null", "--data.eval_transforms", "null", "--data.input_size", "48",
            "--model.net.backbone", "test_resnet", "--model.net.pretrained", "false", "--model.net.hidden", "8",
            "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false", *options]  # fmt: skip


# ------------------------------------------------------------------------------------------------ the command line


@pytest.mark.parametrize(
    "args, message",
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["fit"], "--data, --model not given: pass a config that sets them"),
        (["fit", "--config", "nowhere.yaml"], "--config: File does not exist: '.*nowhere.yaml'"),
        (
            ["fit", "--config", str(TUTORIAL), "--trainer.max_epohcs", "3"],
            "unrecognized arguments: --trainer.max_epohcs",
        ),
        (["fit", "--config", str(TUTORIAL), "--trainer.max_epochs", "x"], "--trainer.max_epochs: Expected a <class"),
        (["fit", "--config", str(TUTORIAL), "--data", "medcls.data.NoSuch"], "--data: .*has no attribute 'NoSuch'"),
        (
            [
                "fit",
                "--config",
                str(TUTORIAL),
                "--model.net",
                "medcls.nets.TorchvisionNet",
                "--model.net.name",
                "vgg99",
            ],
            r"--model.net.name: .*Expected a typing.Literal\['alexnet'.*Got value: vgg99",
        ),
        (["fit", "--config", str(TUTORIAL), "--model.net.name", "x"], "--model.net: .*Option 'name' is not accepted"),
        (["fit", "--config", str(TUTORIAL), "--data.val_size", "many"], "--data.val_size: .*Got value: many"),
    ],
    ids=[
        "subcommand",
        "no-config",
        "config-missing",
        "unknown-option",
        "not-a-number",
        "unknown-class",
        "unknown-net-name",
        "option-of-another-net",
        "val-size-text",
    ],  # fmt: skip
)
def test_invalid_command_lines_are_one_line(refuse: Refuse, args: list[str], message: str) -> None:
    error = refuse(args)
    assert re.search(message, error), error


def test_a_config_that_is_not_yaml_is_named(refuse: Refuse, tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("model: [unclosed\n")
    message = refuse(["fit", "--config", str(config)])
    assert f"--config {config} is not a readable YAML file: while parsing a flow sequence" in message
    assert 'in "' + str(config) + '", line 1, column 8' in message


def test_debug_shows_the_traceback_instead(tutorial: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEBUG_VARIABLE, "0")  # restored afterwards: --debug sets it for the processes DDP starts
    with pytest.raises(Exception, match="needs trained weights"):
        command(["test", *tutorial, "--debug"])


# ------------------------------------------------------------------------------------------------ checkpoints


@pytest.mark.parametrize("subcommand", ["test", "validate", "predict"])
def test_evaluating_without_a_checkpoint_is_refused(refuse: Refuse, tutorial: list[str], subcommand: str) -> None:
    assert "needs trained weights: pass --ckpt_path" in refuse([subcommand, *tutorial])
    assert not Path("runs").exists()


def test_missing_unreadable_and_foreign_checkpoints_are_named(refuse: Refuse, tutorial: list[str], trained: Path,
                                                              tmp_path: Path) -> None:  # fmt: skip
    assert "no checkpoint at nowhere.ckpt; check --ckpt_path" in refuse(["test", *tutorial, "--ckpt_path",
                                                                        "nowhere.ckpt"])  # fmt: skip
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    assert f"{junk} is not a readable checkpoint" in refuse(["test", *tutorial, "--ckpt_path", str(junk)])
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(trained.read_bytes()[: trained.stat().st_size // 2])
    assert f"{truncated} is not a readable checkpoint" in refuse(["test", *tutorial, "--ckpt_path", str(truncated)])
    weights = tmp_path / "weights.pth"
    torch.save({"conv1.weight": torch.zeros(3)}, weights)
    assert "is not a Lightning checkpoint (no state_dict)" in refuse(["test", *tutorial, "--ckpt_path", str(weights)])


def test_a_checkpoint_of_other_tasks_or_another_network_is_refused(refuse: Refuse, tutorial: list[str],
                                                                   trained: Path, tmp_path: Path) -> None:  # fmt: skip
    checkpoint = torch.load(trained, weights_only=True)
    other_tasks = tmp_path / "other_tasks.ckpt"
    checkpoint["hyper_parameters"]["tasks"] = {"letter": 26}
    torch.save(checkpoint, other_tasks)
    message = refuse(["test", *tutorial, "--ckpt_path", str(other_tasks)])
    assert "trained for tasks {'letter': 26}, but the data has tasks {'digit': 10}" in message

    other_net = tmp_path / "other_net.ckpt"
    checkpoint["hyper_parameters"] = {}
    checkpoint["state_dict"] = {"net.trunk.weight": torch.zeros(3)}
    torch.save(checkpoint, other_net)
    assert "holds a different network than the configured model" in refuse(
        ["test", *tutorial, "--ckpt_path", str(other_net)]
    )


def test_a_checkpoint_with_nan_weights_is_refused_before_anything_is_written(
    refuse: Refuse, tutorial: list[str], trained: Path, tmp_path: Path
) -> None:
    checkpoint = torch.load(trained, weights_only=True)
    checkpoint["state_dict"]["net.fc1.weight"][0, 0] = float("nan")
    diverged = tmp_path / "diverged.ckpt"
    torch.save(checkpoint, diverged)
    message = refuse(["test", *tutorial, "--ckpt_path", str(diverged)])
    assert "holds NaN or infinite weights (1 tensors, e.g. net.fc1.weight)" in message


def test_best_and_last_without_a_run_are_refused(refuse: Refuse, tutorial: list[str]) -> None:
    for which in ("best", "last"):
        message = refuse(["test", *tutorial, "--ckpt_path", which])
        assert f"--ckpt_path {which}: experiment runs/mnist-tutorial has no run with checkpoints" in message
    message = refuse(["test", *tutorial, "--ckpt_path", "best", "--trainer.logger", "false"])
    assert "--ckpt_path best needs the TensorBoard logger to find the runs" in message


def test_a_refused_resume_leaves_the_finished_run_untouched(refuse: Refuse, tutorial: list[str], trained: Path) -> None:
    """The issue's case: the refusal rewrote the run's config.yaml and added an events file to it."""
    other_net = ["--model.net", "medcls.nets.TorchvisionNet", "--model.net.name", "resnet18", "--model.net.in_chans",
                 "1"]  # fmt: skip
    message = refuse(["fit", *tutorial, *other_net, "--ckpt_path", "last"])
    assert "holds a different network than the configured model" in message


def test_a_fundus_checkpoint_on_mnist_and_an_mnist_checkpoint_on_fundus_data_name_both_tasks(
    refuse: Refuse, tutorial: list[str], trained: Path, tmp_path: Path, synthetic_idrid: Path
) -> None:
    """The issue's case: the checkpoint's data settings leaked into the other data module (val_size, loss weights)."""
    demo = ["--config", str(DEMO), "--data.root", str(tmp_path / "synthetic"), "--data.cache_dir",
            str(tmp_path / "cache"), "--data.train", "20", "--data.test", "8", "--data.width", "96",
            "--data.image_size", "48", "--data.input_size", "48"]  # fmt: skip
    message = refuse(["test", *demo, "--ckpt_path", str(trained)])
    assert "trained for tasks {'digit': 10}, but the data has tasks {'dr': 5, 'dme': 3}" in message
    assert run(["fit", *fundus(tmp_path, synthetic_idrid), "--trainer.logger.init_args.name", "fundus"]) == (0, "")
    graded = Path("runs/fundus/version_0/checkpoints/best.ckpt")
    message = refuse(["test", *tutorial, "--ckpt_path", str(graded)])
    assert "trained for tasks {'dr': 5, 'dme': 3}, but the data has tasks {'digit': 10}" in message


# ------------------------------------------------------------------------------------------------ model settings


@pytest.mark.parametrize(
    "options, message",
    [
        (["--model.loss_weights", "{digit_axe: 0.5}"], r"--model.loss_weights names unknown heads \['digit_axe'\]"),
        (["--model.regression_tasks", "[grade]"], r"--model.regression_tasks \['grade'\] must be among"),
        (["--model.trunk_lr_factor", "0.1"], "--model.trunk_lr_factor and --model.freeze_trunk_epochs need a net with"),
        (["--model.ema_decay", "2"], "--model.ema_decay must be between 0 and 1"),
        (
            ["--model.net", "medcls.nets.TorchvisionNet", "--model.net.name", "resnet18"],
            r"TorchvisionNet cannot take the data's 1 x 28 x 28 .*--model.net.in_chans",
        ),
        (
            [
                "--model.net",
                "medcls.nets.TorchvisionNet",
                "--model.net.name",
                "inception_v3",
                "--model.net.in_chans",
                "1",
            ],
            "TorchvisionNet cannot take the data's 1 x 28 x 28 .*images",
        ),
    ],
    ids=["loss-weights", "regression-task", "trunk-lr", "ema-decay", "grey-into-rgb", "too-small"],
)
def test_impossible_model_settings_are_refused_naming_the_option(
    refuse: Refuse, tutorial: list[str], options: list[str], message: str
) -> None:
    error = refuse(["fit", *tutorial, *options])
    assert re.search(message, error), error


# ------------------------------------------------------------------------------------------------ training faults


def test_a_diverging_run_stops_and_saves_no_checkpoint(refuse: Refuse, tutorial: list[str]) -> None:
    """The issue's case: lr 1e10 trained NaNs, exited 0, and saved best.ckpt and last.ckpt of NaN weights."""
    message = refuse(["fit", *tutorial, "--model.optimizer.lr", "1e10", "--trainer.max_epochs", "3"])
    assert "is NaN or infinite (epoch 0" in message and "training diverged" in message
    assert "--model.optimizer.lr, now 1e+10" in message and "--trainer.gradient_clip_val" in message


class ExplodeInSecondEpoch(Callback):
    """Sets a learning rate that diverges at once, from the second epoch on."""

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.current_epoch == 1:
            for group in trainer.optimizers[0].param_groups:
                group["lr"] = 1e10


def test_a_run_diverging_later_keeps_the_good_checkpoints_and_says_where(tutorial: list[str]) -> None:
    callback = ["--trainer.callbacks+=tests.test_bad_inputs.ExplodeInSecondEpoch", "--trainer.max_epochs", "3"]
    status, message = run(["fit", *tutorial, *callback])
    assert status == 1 and "training diverged" in message and "(epoch 1," in message
    run_folder = Path("runs/mnist-tutorial/version_0")
    assert f"The checkpoints saved before, in {run_folder / 'checkpoints'}, hold good weights" in message
    for name in ("best.ckpt", "last.ckpt"):
        checkpoint = torch.load(run_folder / "checkpoints" / name, weights_only=True)
        assert checkpoint["epoch"] == 0
        assert all_finite(checkpoint["state_dict"])


def test_a_checkpoint_of_nan_weights_is_never_written(tutorial: list[str]) -> None:
    """Even where no loss was checked (a checkpoint every step), the diverged weights are not saved."""
    every_step = ["--last_checkpoint.every_n_train_steps", "1", "--model.optimizer.lr", "1e10"]
    status, message = run(["fit", *tutorial, *every_step, "--trainer.log_every_n_steps", "1000"])
    assert status == 1 and "training diverged" in message
    for checkpoint in Path("runs").rglob("*.ckpt"):
        assert all_finite(torch.load(checkpoint, weights_only=True)["state_dict"]), checkpoint


# ------------------------------------------------------------------------------------------------ scripts


def test_compare_names_a_missing_predictions_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        run_script("compare.py", [str(tmp_path / "nowhere.csv"), "--out", str(tmp_path / "c")], monkeypatch)
    assert exit_.value.code == f"compare.py: error: cannot read predictions file {tmp_path / 'nowhere.csv'} " + (
        "(No such file or directory); pass a predictions.csv."
    )
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------ what a user sees


def test_a_normal_run_prints_no_tips_no_repeats_and_no_carriage_returns(mnist_root: Path, tmp_path: Path) -> None:
    """fit, resume and test through the installed command, output redirected as in a batch job."""
    args = ["--config", str(TUTORIAL), "--data.root", str(mnist_root), "--data.val_size", "100",
            "--trainer.log_every_n_steps", "2"]  # fmt: skip
    outputs = []
    for command_args in (["fit", *args, "--trainer.max_epochs", "1"],
                         ["fit", *args, "--trainer.max_epochs", "2", "--ckpt_path", "last"],
                         ["test", *args, "--ckpt_path", "best"]):  # fmt: skip
        done = subprocess.run([sys.executable, "-m", "medcls", *command_args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(done.stdout + done.stderr)
    fit, resume, test = outputs
    for output in outputs:
        assert "Tip:" not in output and "\r" not in output and "Traceback" not in output
        lines = [line for line in output.splitlines() if "Warning" in line or "warn" in line.lower()]
        assert len(lines) == len(set(lines)), lines  # no warning twice
    assert "Epoch 0/0: " in fit and "val/loss" in fit
    assert "exists and is not empty" not in resume and "v_num=on_0" not in resume and "Epoch 1/1: " in resume
    assert "dirpath has changed" not in test and "Be aware" not in test
    assert "Test report written to runs/mnist-tutorial/version_1" in test
    assert json.loads((tmp_path / "runs/mnist-tutorial/version_1/metrics.json").read_text())["n"] == 100


# ------------------------------------------------------------------------------------------------ data


def damage_mnist(raw: Path, damage: str) -> None:
    """Damage a small MNIST in ``raw`` the way downloads and copies go wrong."""
    images, labels = raw / "t10k-images-idx3-ubyte", raw / "t10k-labels-idx1-ubyte"
    if damage == "missing":
        (raw / "train-labels-idx1-ubyte").unlink()
    elif damage == "truncated":
        images.write_bytes(images.read_bytes()[:-100])
    elif damage == "empty":
        labels.write_bytes(b"")
    elif damage == "counts":
        write_idx(labels, np.zeros(99, dtype=np.uint8))
    elif damage == "header":
        images.write_bytes(b"<html>" + images.read_bytes()[6:])
    elif damage == "not-digits":
        write_idx(labels, np.full(100, 12, dtype=np.uint8))
    elif damage == "gzip":
        labels.unlink()
        labels.with_name(labels.name + ".gz").write_bytes(b"\x1f\x8b not really gzip")


@pytest.mark.parametrize(
    "damage, message",
    [
        ("missing", r"MNIST files missing in .*raw: train-labels-idx1-ubyte\. Put the four files"),
        ("truncated", r"t10k-images-idx3-ubyte is truncated: its header promises 100 images of 28 x 28, 78416 bytes, "
                      r"but the file has 78316 bytes; replace it"),
        ("empty", r"t10k-labels-idx1-ubyte is empty \(0 bytes\)"),
        ("counts", r"t10k-images-idx3-ubyte holds 100 images but .*t10k-labels-idx1-ubyte holds 99 labels"),
        ("header", r"t10k-images-idx3-ubyte is not an MNIST IDX file \(header 0x"),
        ("not-digits", r"t10k-labels-idx1-ubyte: label 0 is 12, not a digit 0-9 \(100 such labels\)"),
        ("gzip", r"t10k-labels-idx1-ubyte.gz is not a readable gzip file"),
    ],
)  # fmt: skip
def test_a_damaged_mnist_names_the_file(refuse: Refuse, tutorial: list[str], mnist_root: Path, damage: str,
                                        message: str) -> None:  # fmt: skip
    damage_mnist(mnist_root / "MNIST" / "raw", damage)
    error = refuse(["fit", *tutorial])
    assert re.search(message, error), error
    assert not Path("runs").exists()


@pytest.fixture
def idrid(tmp_path: Path, synthetic_idrid: Path) -> Path:
    """A copy of the session's synthetic IDRiD tree (its "B. Disease Grading" folder), to damage."""
    return shutil.copytree(synthetic_idrid, tmp_path / "idrid")


def labels_file(tree: Path, split: str = "train") -> Path:
    name = "a. IDRiD_Disease Grading_Training Labels.csv" if split == "train" else (
        "b. IDRiD_Disease Grading_Testing Labels.csv")  # fmt: skip
    return tree / "2. Groundtruths" / name


def images_folder(tree: Path) -> Path:
    return tree / "1. Original Images" / "a. Training Set"


def edit_labels(tree: Path, old: str, new: str) -> None:
    path = labels_file(tree)
    text = path.read_text(encoding="utf-8-sig")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize(
    "damage, message",
    [
        ("no-tree", r"a\. Training Set not found: it holds IDRiD's train images\. Point the root at the "
                    r"'B\. Disease Grading' folder"),
        ("grade", r"Training Labels\.csv, line 2: 'retinopathy grade' is 7, out of range; expected 0 to 4"),
        ("column", r"Training Labels\.csv, line 1: missing column\(s\) 'risk of macular edema'"),
        ("image", r"Training Labels\.csv, line 2: image 'IDRiD_001' is listed but .*IDRiD_001\.jpg is missing"),
        ("escape", r"Training Labels\.csv, line 2: image name '\.\./\.\./secret\.jpg' points outside the data root"),
        ("corrupt", r"1 fundus image\(s\) could not be read: .*IDRiD_002\.jpg: cannot decode this image .*"
                    r"pass --data\.skip_corrupt true to leave them out"),
    ],
)  # fmt: skip
def test_a_damaged_idrid_tree_names_the_file_and_row(
    refuse: Refuse, tmp_path: Path, idrid: Path, damage: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    tree = idrid  # the "B. Disease Grading" folder
    if damage == "no-tree":
        shutil.rmtree(tree / "1. Original Images")
    elif damage == "grade":
        edit_labels(tree, "IDRiD_001,", "IDRiD_001,7,0,,#")
    elif damage == "column":
        edit_labels(tree, "Risk of macular edema", "Risk of macular oedema")
    elif damage == "image":
        (images_folder(tree) / "IDRiD_001.jpg").unlink()
    elif damage == "escape":
        edit_labels(tree, "IDRiD_001,", "../../secret,")
    elif damage == "corrupt":
        (images_folder(tree) / "IDRiD_002.jpg").write_bytes(b"\xff\xd8 not a photograph")
    # A build that meets unreadable images completes the cache of the others, so that a rerun with
    # --data.skip_corrupt true costs nothing: the one thing a refused command may leave, complete.
    error = refuse(["fit", *fundus(tmp_path, idrid)], but="cache" if damage == "corrupt" else None)
    assert re.search(message, error), error
    if damage == "corrupt":
        (cache,) = (tmp_path / "cache").iterdir()
        manifest = json.loads((cache / "manifest.json").read_text())
        assert list(manifest["skipped"]) == [str(images_folder(tree) / "IDRiD_002.jpg")]
        assert run(["fit", *fundus(tmp_path, idrid), "--data.skip_corrupt", "true"]) == (0, "")


@pytest.mark.parametrize(
    "options, message",
    [
        (["--data.image_size", "16"], r"--data\.image_size \(the cache's image size\) is 16; it must be at least 32"),
        (["--data.select_tasks", "[drr]"], r"--data\.select_tasks names \['drr'\]; this data set labels"),
        (["--data.balance", "grade"], r"--data\.balance names the task 'grade'"),
        (["--data.val_size", "1.5"], r"--data\.val_size \(the hold-out size\) is 1\.5"),
        (["--data.cache_format", "png"], r"--data\.cache_format: .*Expected a typing\.Literal\['jpeg', 'memmap'\]"),
        (["--model.net.backbone", "resnet5"], r"--model\.net\.backbone 'resnet5' is not a timm model; .*resnet50"),
        (["--model.net", "medcls.nets.TutorialNet"], r"TutorialNet has one head"),
        (["--model.net", "medcls.nets.CANet", "--model.net.backbone", "test_resnet", "--data.select_tasks", "[dr]"],
         r"CANet grades two diseases"),
    ],
)  # fmt: skip
def test_impossible_fundus_settings_name_the_option_before_anything_is_written(
    refuse: Refuse, tmp_path: Path, synthetic_idrid: Path, options: list[str], message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    error = refuse(["fit", *fundus(tmp_path, synthetic_idrid), *options], synthetic_idrid)
    assert re.search(message, error), error


def test_a_messidor_sheet_that_is_broken_or_a_fold_that_does_not_exist_is_named(
    refuse: Refuse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.data.trees import make_messidor

    monkeypatch.chdir(tmp_path)
    make_messidor(tmp_path / "messidor", fmt="xlsx")
    messidor = ["--config", str(REPO / "configs/messidor/resnet50.yaml"), "--data.root", str(tmp_path / "messidor"),
                "--model.net.name", "test_resnet", "--model.net.pretrained", "false"]  # fmt: skip
    assert "--data.fold is 10; the test fold must be between 0 and 9" in refuse(["fit", *messidor, "--data.fold", "10"])
    sheet = tmp_path / "messidor" / "Annotation_Base11.xlsx"
    sheet.write_bytes(sheet.read_bytes()[:200])
    error = refuse(["fit", *messidor])
    assert f"{sheet} is not a readable Excel workbook" in error and "save it again" in error


@pytest.mark.parametrize(
    "options, message",
    [
        (["--model.net", "medcls.nets.TimmNet", "--model.net.name", "resnet5", "--model.net.in_chans", "1"],
         r"--model\.net\.name 'resnet5' is not a timm model; .*resnet50"),
        (["--model.net", "medcls.nets.TimmNet", "--model.net.name", "test_resnet", "--model.net.in_chans", "1",
          "--model.net.pretrained", "nowhere.pth"], r"Weights file nowhere\.pth not found; give --model\.net\.pretr"),
        (["--model.net", "medcls.nets.TorchvisionNet", "--model.net.name", "resnet18", "--model.net.in_chans", "1",
          "--model.net.weights", "nowhere.pth"], r"Weights file nowhere\.pth not found; give --model\.net\.weights"),
        (["--model", "medcls.models.Ensemble", "--model.checkpoints", "[nowhere.ckpt]"],
         r"ensemble member nowhere\.ckpt not found; check --model\.checkpoints"),
    ],
    ids=["timm-name", "timm-weights", "torchvision-weights", "ensemble-member"],
)  # fmt: skip
def test_a_net_or_ensemble_that_cannot_be_built_is_one_line(refuse: Refuse, tutorial: list[str],
                                                            options: list[str], message: str) -> None:  # fmt: skip
    subcommand = "test" if "medcls.models.Ensemble" in options else "fit"
    error = refuse([subcommand, *tutorial, *options])
    assert re.search(message, error), error


def test_a_weights_file_of_another_architecture_is_named(refuse: Refuse, tutorial: list[str], tmp_path: Path) -> None:
    weights = tmp_path / "tutorial.pth"
    torch.save(TutorialNet({"digit": 10}).state_dict(), weights)
    options = ["--model.net", "medcls.nets.TimmNet", "--model.net.name", "test_resnet", "--model.net.in_chans", "1",
               "--model.net.pretrained", str(weights)]  # fmt: skip
    error = refuse(["fit", *tutorial, *options])
    assert f"Weights file {weights} does not fit" in error and "--model.net.pretrained" in error


def test_a_messy_but_valid_tree_trains(tmp_path: Path, synthetic_idrid: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What used to be refused or silently wrong, all in one tree: images that are links into a store outside the
    root, a 16-bit PNG under a .jpg name, and a label file exported from Excel in cp1252."""
    monkeypatch.chdir(tmp_path)
    store, tree = tmp_path / "store", shutil.copytree(synthetic_idrid, tmp_path / "idrid")
    store.mkdir()
    for image in sorted(images_folder(tree).glob("*.jpg"))[:5]:
        image.rename(store / image.name)
        image.symlink_to(store / image.name)
    wide = images_folder(tree) / "IDRiD_006.jpg"
    with Image.open(wide) as picture:
        grey = np.asarray(picture.convert("L"), dtype=np.uint16) * 257  # the same picture at 16 bits
    Image.fromarray(grey).save(wide, format="PNG")
    path = labels_file(tree)
    text = path.read_text(encoding="utf-8-sig").replace("Risk of macular edema ,", "Risk of macular edema ,Remarqué", 1)
    path.write_bytes(text.encode("cp1252"))  # "CSV" from a French Excel: not UTF-8
    assert run(["fit", *fundus(tmp_path, tmp_path / "idrid")]) == (0, "")
    cache = next((tmp_path / "cache").iterdir())
    manifest = json.loads((cache / "manifest.json").read_text())
    assert not manifest["skipped"] and len(manifest["sources"]) == 40
    row = manifest["sources"].index(str(wide.resolve()))
    with Image.open(cache / f"{manifest['rows'][row]:06d}.jpg") as cached:
        pixels = np.asarray(cached)
    assert (pixels == 255).mean() < 0.05  # scaled from its real range, not saturated


def edit_table(table: Path, old: str, new: str, count: int = 1) -> None:
    text = table.read_text()
    assert old in text, old
    table.write_text(text.replace(old, new, count))


@pytest.mark.parametrize(
    "edit, message",
    [
        (("diagnosis", "finding"), r"labels\.csv, row 1: no column 'diagnosis' \(--data\.label_columns\); the table's"),
        (("normal", "pneumonia"), r"labels\.csv, (line|row) 2.*'pneumonia'.*normal.*tuberculosis"),
        (("images/xr002.png", "images/xr001.png"), r"labels\.csv, row 4: image 'images/xr001\.png' is listed again"),
        (("images/xr000.png", "../../secret.png"), r"labels\.csv, row 2: image name '\.\./\.\./secret\.png' points"),
        (("xr001.png,tuberculosis,p0,train", "xr001.png,tuberculosis,p0,test"), r"labels\.csv.*'p0'.*train.*test"),
        ((",train", ",training"), r"labels\.csv, (line|row) 2.*'training'.*train.*val.*test"),
        ((",train", ",test", -1), r"the train split of .* holds no images, and 'medcls fit' needs some"),
        (("images/xr000.png", "images/rtplan.dcm"), r"rtplan\.dcm.*without pixel data"),
    ],
    ids=["column", "label", "twice", "escape", "group", "split", "empty", "dicom"],
)  # fmt: skip
def test_a_damaged_table_of_own_images_names_the_row_or_column(
    refuse: Refuse, tmp_path: Path, edit: tuple, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydicom.data import get_testdata_file

    from tests.data.own_images import write_png_table

    table = write_png_table(tmp_path / "chest", 16, split=True)
    shutil.copy(get_testdata_file("rtplan.dcm", download=False), table.parent / "images")  # a DICOM plan: no pixels
    monkeypatch.chdir(tmp_path)
    options = ["--config", str(REPO / "configs/own/chest_xray_table.yaml"), "--data.table", str(table),
               "--data.root", str(table.parent), "--data.split_column", "split",
               "--data.cache_dir", str(tmp_path / "cache"), "--model.net.name", "test_resnet",
               "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false"]  # fmt: skip
    edit_table(table, *edit)
    # A build that meets an unreadable image completes the cache of the others (see the IDRiD case above).
    error = refuse(["fit", *options], but="cache" if edit[1].endswith(".dcm") else None)
    assert re.search(message, error), error


@pytest.mark.parametrize(
    "damage, message",
    [
        ("level", r"trainLabels\.csv, (line|row) 3.*level.*7"),
        ("missing", r"trainLabels\.csv, line 2: image .2_left. is listed but no image file of that name"),
        ("twice", r"trainLabels\.csv, (line|row) 3.*2_left.*(again|twice)"),
        ("xray-name", r"CHNCXR_0002\.png"),
    ],
)  # fmt: skip
def test_a_damaged_public_tree_names_the_file_and_row(
    refuse: Refuse, tmp_path: Path, damage: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medcls.synthetic.chest import write_shenzhen_tree
    from medcls.synthetic.trees import write_eyepacs_tree

    monkeypatch.chdir(tmp_path)
    quick = ["--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false", "--data.cache_dir",
             str(tmp_path / "cache"), "--model.net.name", "resnet18"]  # fmt: skip
    if damage == "xray-name":
        shenzhen = write_shenzhen_tree(tmp_path / "tb", 6, size=64)
        images = shenzhen / "CXR_png"
        (images / "CHNCXR_0002_0.png").rename(images / "CHNCXR_0002.png")
        args = ["-c", str(REPO / "configs/tuberculosis/alexnet.yaml"), "--data.root", str(tmp_path / "tb"), *quick]
    else:
        eyepacs = write_eyepacs_tree(tmp_path / "eyepacs", train=8, size=(96, 64), seed=1)
        labels = eyepacs / "trainLabels.csv"
        if damage == "level":
            edit_table(labels, "2_right,0", "2_right,7")
        elif damage == "missing":
            next((eyepacs / "train").glob("2_left.*")).unlink()
        elif damage == "twice":
            edit_table(labels, "2_right,0", "2_left,0")
        args = ["-c", str(REPO / "configs/eyepacs/gulshan_inception_v3.yaml"), "--data.root", str(eyepacs), *quick]
    error = refuse(["fit", *args])
    assert re.search(message, error), error
