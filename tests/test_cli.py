import copy
import csv
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch import Callback, LightningModule, Trainer

from medcls.cli import _requested_subcommand, main
from medcls.errors import MedclsError
from medcls.io import AtomicCheckpointIO

REPO = Path(__file__).parents[1]
CONFIG_DIR = REPO / "configs"
PRESET_DIRS = ("transforms", "presets")  # stacked onto a whole config, never used alone
CONFIGS = sorted(c for c in CONFIG_DIR.rglob("*.yaml") if c.parent.name not in PRESET_DIRS)
PRESETS = sorted(c for c in CONFIG_DIR.rglob("*.yaml") if c.parent.name in PRESET_DIRS)


def run_dirs(experiment: str = "mnist-tutorial") -> list[Path]:
    """The run folders of an experiment, oldest first."""
    return sorted(Path("runs", experiment).glob("version_*"), key=lambda p: int(p.name.split("_")[1]))


def test_fit_test_predict_round_trip(tutorial: list[str]) -> None:
    main(["fit", *tutorial])
    (run,) = run_dirs()
    checkpoints = run / "checkpoints"
    assert {p.name for p in checkpoints.iterdir()} == {"best.ckpt", "last.ckpt"}
    assert (run / "config.yaml").is_file()
    logged = {tag for event in run.glob("events.out.tfevents.*") for tag in _scalar_tags(event)}
    assert {"train/loss_step", "val/loss", "val/digit/accuracy", "lr-SGD"} <= logged
    assert "hp_metric" not in logged

    main(["test", *tutorial, "--ckpt_path", str(checkpoints / "best.ckpt")])
    test_run = run_dirs()[-1]
    metrics = json.loads((test_run / "metrics.json").read_text())
    accuracy = metrics["digit"]["accuracy"]
    assert accuracy["ci_low"] <= accuracy["value"] <= accuracy["ci_high"] and metrics["loss"] > 0
    assert metrics["n"] == 100 and {"auc", "kappa", "balanced_accuracy", "f1"} <= metrics["digit"].keys()
    with open(test_run / "predictions.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 100
    assert list(rows[0]) == ["id", "digit", "digit_pred", "digit_pred_class"] + [f"digit_prob_{k}" for k in range(10)]
    assert sum(row["digit"] == row["digit_pred"] for row in rows) / len(rows) == pytest.approx(accuracy["value"])
    assert sum(float(row[f"digit_prob_{k}"]) for k in range(10) for row in rows[:1]) == pytest.approx(1, abs=1e-4)
    assert (test_run / "confusion_digit.png").stat().st_size > 0
    assert (test_run / "confusion_digit_normalised.png").stat().st_size > 0
    assert (test_run / "predictions.png").stat().st_size > 0
    final = {tag for event in test_run.glob("events.out.tfevents.*") for tag in _scalar_tags(event)}
    assert {"hp/digit/accuracy", "hp/digit/auc", "hp/digit/kappa"} <= final  # the metrics of the hparams view
    images = {tag for event in test_run.glob("events.out.tfevents.*") for tag in _image_tags(event)}
    assert {"test/confusion/digit", "test/confusion_normalised/digit", "test/predictions"} <= images

    main(["predict", *tutorial, "--ckpt_path", str(checkpoints / "best.ckpt")])
    with open(run_dirs()[-1] / "predictions.csv") as file:
        predicted = list(csv.DictReader(file))
    assert [row["id"] for row in predicted] == [row["id"] for row in rows]
    assert "digit" not in predicted[0] and predicted[0]["digit_pred"] == rows[0]["digit_pred"]


def test_checkpoint_alone_rebuilds_model_and_data(tutorial: list[str]) -> None:
    main(["fit", *tutorial, "--model.init_args.net.init_args.dropout", "0.25"])
    best = run_dirs()[0] / "checkpoints/best.ckpt"
    main(["test", "--ckpt_path", str(best), "--trainer.enable_progress_bar", "false"])
    config = yaml.safe_load((run_dirs()[-1] / "config.yaml").read_text())
    assert config["model"]["init_args"]["net"]["init_args"]["dropout"] == 0.25
    assert config["data"]["init_args"]["val_size"] == 100


def test_resume_continues_at_next_epoch_with_optimizer_state(tutorial: list[str], monkeypatch) -> None:
    main(["fit", *tutorial])
    last = run_dirs()[0] / "checkpoints/last.ckpt"
    saved = torch.load(last, weights_only=True)
    assert saved["epoch"] == 0

    restored = {}
    from medcls.models import Classifier

    def on_train_epoch_start(self) -> None:
        if not restored:
            restored["epoch"] = self.current_epoch
            restored["optimizer"] = copy.deepcopy(self.trainer.optimizers[0].state_dict())

    monkeypatch.setattr(Classifier, "on_train_epoch_start", on_train_epoch_start, raising=False)
    main(["fit", *tutorial, "--ckpt_path", str(last), "--trainer.max_epochs", "2"])
    assert restored["epoch"] == 1
    momentum = restored["optimizer"]["state"]
    assert momentum and momentum.keys() == saved["optimizer_states"][0]["state"].keys()
    for key, state in saved["optimizer_states"][0]["state"].items():
        torch.testing.assert_close(momentum[key]["momentum_buffer"], state["momentum_buffer"])
    assert torch.load(run_dirs()[-1] / "checkpoints/last.ckpt", weights_only=True)["epoch"] == 1


def print_config(*configs: Path, capsys: pytest.CaptureFixture) -> dict:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *(arg for config in configs for arg in ("--config", str(config))), "--print_config"])
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


def test_help_lists_every_subcommand_and_a_subcommand_shows_its_own_options(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("fit", "validate", "test", "predict"))
    with pytest.raises(SystemExit):
        main(["test", "--help"])
    assert "--ckpt_path" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, subcommand",
    [(["fit", "--data.split", "test"], "fit"), (["-c", "fit", "test"], "test"),
     (["--config=x.yaml", "predict"], "predict"), (["--help"], None)],
)  # fmt: skip
def test_the_subcommand_is_the_first_argument_that_is_no_option(argv: list[str], subcommand: str | None) -> None:
    assert _requested_subcommand(argv) == subcommand


@pytest.mark.parametrize("config", CONFIGS, ids=[str(c.relative_to(CONFIG_DIR)) for c in CONFIGS])
def test_every_config_parses(config: Path, capsys: pytest.CaptureFixture) -> None:
    printed = print_config(config, capsys=capsys)
    assert printed["model"]["class_path"] and printed["data"]["class_path"]


@pytest.mark.parametrize("preset", PRESETS, ids=[str(c.relative_to(CONFIG_DIR)) for c in PRESETS])
def test_every_preset_stacks_onto_the_demo(preset: Path, capsys: pytest.CaptureFixture) -> None:
    stacked = print_config(CONFIG_DIR / "demo.yaml", preset, capsys=capsys)
    alone = print_config(CONFIG_DIR / "demo.yaml", capsys=capsys)
    assert stacked != alone and stacked["data"]["class_path"] == alone["data"]["class_path"]


def _scalar_tags(event_file: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(event_file))
    accumulator.Reload()
    return set(accumulator.Tags()["scalars"])


def _image_tags(event_file: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(event_file))
    accumulator.Reload()
    return set(accumulator.Tags()["images"])


def test_best_and_last_name_the_newest_run_and_a_resumed_fit_continues_in_it(tutorial: list[str]) -> None:
    with pytest.raises(MedclsError, match=r"experiment runs/mnist-tutorial has no run with checkpoints"):
        main(["test", *tutorial, "--ckpt_path", "best"])
    main(["fit", *tutorial])
    main(["fit", *tutorial])
    main(["fit", *tutorial, "--ckpt_path", "last", "--trainer.max_epochs", "2"])
    first, resumed = run_dirs()  # the resumed fit wrote into the newest run, not into a third
    assert torch.load(resumed / "checkpoints/last.ckpt", weights_only=True)["epoch"] == 1
    assert torch.load(first / "checkpoints/last.ckpt", weights_only=True)["epoch"] == 0
    main(["test", *tutorial, "--ckpt_path", "best"])
    config = yaml.safe_load((run_dirs()[-1] / "config.yaml").read_text())
    assert config["ckpt_path"] == str(resumed / "checkpoints/best.ckpt")


def test_top_k_checkpoints_and_the_best_of_them(tutorial: list[str]) -> None:
    with pytest.raises(MedclsError, match="would all be named 'best'"):
        main(["fit", *tutorial, "--checkpoint.save_top_k", "2"])
    top_2 = ["--checkpoint.save_top_k", "2", "--checkpoint.filename", "epoch{epoch}", "--trainer.max_epochs", "3"]
    main(["fit", *tutorial, *top_2])
    (run,) = run_dirs()
    assert len({p.name for p in (run / "checkpoints").iterdir()} - {"last.ckpt"}) == 2
    state = _checkpointing_state(torch.load(run / "checkpoints/last.ckpt", weights_only=True))
    best_scores = {Path(path).name: float(score) for path, score in state["best_k_models"].items()}
    main(["test", *tutorial, "--ckpt_path", "best"])
    config = yaml.safe_load((run_dirs()[-1] / "config.yaml").read_text())
    assert Path(config["ckpt_path"]).name == min(best_scores, key=best_scores.get)


def test_last_checkpoint_is_the_last_epoch_also_when_the_best_is_older(tutorial: list[str]) -> None:
    main(["fit", *tutorial, "--trainer.max_epochs", "2", "--checkpoint.mode", "max"])  # the worst val/loss
    (run,) = run_dirs()
    best = torch.load(run / "checkpoints/best.ckpt", weights_only=True)
    assert best["epoch"] == 0  # the validation loss fell, so "max" kept the first epoch as the best
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=True)["epoch"] == 1


def test_early_stopping_after_patience_validations_without_improvement(tutorial: list[str]) -> None:
    # A min_delta no change can beat: only the first validation improves (on infinity).
    main(["fit", *tutorial, "--trainer.max_epochs", "4", "--early_stopping.patience", "1",
          "--early_stopping.min_delta", "100", "--checkpoint.monitor", "val/digit/accuracy",
          "--checkpoint.mode", "max"])  # fmt: skip
    main(["fit", *tutorial, "--trainer.max_epochs", "2", "--early_stopping.min_delta", "100"])  # no patience: off
    stopped, full = run_dirs()
    assert torch.load(stopped / "checkpoints/last.ckpt", weights_only=True)["epoch"] == 1
    assert torch.load(full / "checkpoints/last.ckpt", weights_only=True)["epoch"] == 1
    assert yaml.safe_load((stopped / "config.yaml").read_text())["early_stopping"]["patience"] == 1


def test_checkpoint_restores_without_the_pretrained_weights_file(tutorial: list[str], tmp_path: Path) -> None:
    import timm

    weights = tmp_path / "trunk.pth"
    torch.save(timm.create_model("test_resnet", num_classes=0, in_chans=1).state_dict(), weights)
    net = ["--model.init_args.net", "medcls.nets.TimmNet", "--model.init_args.net.init_args.name", "test_resnet",
           "--model.init_args.net.init_args.in_chans", "1",
           "--model.init_args.net.init_args.pretrained", str(weights)]  # fmt: skip
    main(["fit", *tutorial, *net, "--trainer.limit_train_batches", "2"])
    weights.unlink()
    main(
        ["test", "--ckpt_path", str(run_dirs()[0] / "checkpoints/last.ckpt"), "--trainer.enable_progress_bar", "false"]
    )
    config = yaml.safe_load(Path("runs/mnist-timm/version_0/config.yaml").read_text())  # named after data and net
    assert config["model"]["init_args"]["net"]["init_args"]["pretrained"] is False


def test_canet_fit_test_round_trip_on_synthetic_fundus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the pipelines on the device (the CPU here); the demo's other tests run them in the workers."""
    monkeypatch.chdir(tmp_path)
    tiny = ["--config", str(CONFIG_DIR / "demo.yaml"), "--data.transforms_on", "device", "--data.num_workers", "1",
            "--trainer.max_epochs", "2", "--trainer.enable_progress_bar",
            "false", "--model.init_args.net.init_args.backbone", "test_resnet",
            "--data.train", "30", "--data.test", "10", "--data.width", "160", "--data.image_size", "64",
            "--data.input_size", "48", "--data.batch_size", "8", "--data.preprocess_workers", "1",
            "--report.bootstrap_resamples", "200"]  # fmt: skip
    main(["fit", *tiny])
    main(["test", *tiny, "--ckpt_path", "best"])
    fit_run, test_run = sorted(Path("runs/demo").iterdir())
    assert (fit_run / "checkpoints/best.ckpt").is_file()
    splits = (fit_run / "splits.csv").read_text().splitlines()
    assert len(splits) == 1 + 40 and splits[0] == "id,split,group,dr,dme"
    metrics = json.loads((test_run / "metrics.json").read_text())
    assert {"dr", "dme", "referable_dr", "dme_present", "joint_accuracy", "operating_points"} <= metrics.keys()
    assert {"kappa", "auc", "accuracy"} <= metrics["dr"].keys() and "sensitivity" not in metrics["dr"]
    checkpoint = torch.load(fit_run / "checkpoints/best.ckpt", weights_only=True)
    assert metrics["operating_points"].keys() == checkpoint["operating_points"].keys()
    for question, points in checkpoint["operating_points"].items():  # chosen on validation, applied to test
        for point, threshold in points.items():
            written = threshold if math.isfinite(threshold) else "inf"  # "no image positive", in standard JSON
            assert metrics["operating_points"][question][point] == written
            assert metrics[question][f"{point}/threshold"]["value"] == written
    with open(test_run / "predictions.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 10 and {"dr", "dr_pred", "dme", "dme_pred", "dme_prob_2"} <= rows[0].keys()
    assert {p.name for p in test_run.glob("*.png")} == {
        "confusion_dr.png", "confusion_dme.png", "confusion_dr_normalised.png", "confusion_dme_normalised.png",
        "roc_referable_dr.png", "roc_dme_present.png", "predictions.png",
    }  # fmt: skip


def test_ensemble_of_one_checkpoint_twice_equals_that_checkpoint(tutorial: list[str]) -> None:
    main(["fit", *tutorial])
    best = str(run_dirs()[0] / "checkpoints/best.ckpt")
    main(["test", *tutorial, "--ckpt_path", best])
    single = json.loads((run_dirs()[-1] / "metrics.json").read_text())
    ensemble = ["--model", "medcls.models.Ensemble", "--model.init_args.checkpoints", f"[{best}, {best}]"]
    main(["test", *tutorial, *ensemble])
    twice = json.loads((run_dirs()[-1] / "metrics.json").read_text())
    assert twice["digit"]["accuracy"] == single["digit"]["accuracy"]
    assert twice["digit"]["auc"]["value"] == pytest.approx(single["digit"]["auc"]["value"], abs=1e-6)
    main(["test", *tutorial, *ensemble, "--model.init_args.flip_tta", "true"])
    with open(run_dirs()[-1] / "predictions.csv") as file:
        assert len(list(csv.DictReader(file))) == 100


def test_ensemble_of_other_tasks_is_refused(tutorial: list[str], tmp_path: Path) -> None:
    main(["fit", *tutorial])
    checkpoint = torch.load(run_dirs()[0] / "checkpoints/best.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["tasks"] = {"letter": 10}  # a model of ten letters: same shapes, other task
    other = tmp_path / "letters.ckpt"
    torch.save(checkpoint, other)
    with pytest.raises(MedclsError, match=r"ensemble member .*letters.ckpt was trained for tasks \{'letter': 10\}"):
        main(["test", *tutorial, "--model", "medcls.models.Ensemble", "--model.init_args.checkpoints", f"[{other}]"])


class KillMidEpoch(Callback):
    """SIGKILLs its own process in the middle of the second epoch, as a pre-empted job or the OOM killer would."""

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        if trainer.current_epoch == 1 and batch_idx == 3:
            os.kill(os.getpid(), signal.SIGKILL)


def test_a_run_killed_mid_epoch_resumes_with_last_and_finishes(tutorial: list[str]) -> None:
    three_epochs = [*tutorial, "--trainer.max_epochs", "3"]
    killed = subprocess.run(
        [sys.executable, "-m", "medcls", "fit", *three_epochs, "--trainer.callbacks+=tests.test_cli.KillMidEpoch"],
        env=os.environ | {"PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    (run,) = run_dirs()
    assert torch.load(run / "checkpoints/last.ckpt", weights_only=True)["epoch"] == 0  # the last complete epoch

    resumed = main(["fit", *three_epochs, "--ckpt_path", "last"])
    assert isinstance(resumed.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    assert run_dirs() == [run]
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}  # nothing half-written
    last = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    best = torch.load(run / "checkpoints/best.ckpt", weights_only=True)
    steps_per_epoch = math.ceil(500 / 64)  # the tutorial's 600 training digits less 100 for validation
    assert last["epoch"] == 2 and last["global_step"] == 3 * steps_per_epoch
    assert best["state_dict"].keys() == last["state_dict"].keys()


def test_two_seeded_runs_of_the_demo_give_identical_weights_and_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    tiny = ["--config", str(CONFIG_DIR / "demo.yaml"), "--trainer.max_epochs", "1", "--trainer.enable_progress_bar",
            "false", "--data.train", "40", "--data.test", "10", "--data.width", "128", "--data.image_size", "48",
            "--data.input_size", "48", "--data.batch_size", "8", "--data.preprocess_workers", "1",
            "--data.root", str(tmp_path / "synthetic"), "--data.cache_dir", str(tmp_path / "cache")]  # fmt: skip
    main(["fit", *tiny])
    main(["fit", *tiny])
    main(["fit", *tiny, "--seed_everything", "1"])
    first, second, other_seed = (torch.load(run / "checkpoints/last.ckpt", weights_only=True)
                                 for run in run_dirs("demo"))  # fmt: skip
    assert first["state_dict"].keys() == second["state_dict"].keys()
    for name, weights in first["state_dict"].items():
        assert torch.equal(weights, second["state_dict"][name]), name
    assert first["operating_points"] == second["operating_points"]
    assert _checkpointing_state(first)["best_model_score"] == _checkpointing_state(second)["best_model_score"]
    assert not all(torch.equal(w, other_seed["state_dict"][name]) for name, w in first["state_dict"].items())


def _checkpointing_state(checkpoint: dict) -> dict:
    """What the checkpoint callback recorded in a checkpoint (best scores and paths)."""
    (state,) = [state for key, state in checkpoint["callbacks"].items() if key.startswith("ModelCheckpoint")
                and state["monitor"]]  # fmt: skip
    return state
