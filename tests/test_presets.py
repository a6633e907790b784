"""The presets of ``configs/presets``, stacked onto whole configs as the README shows."""

from pathlib import Path

import pytest
import torch

from medcls.cli import main

CONFIGS = Path(__file__).parents[1] / "configs"


def preset(name: str) -> list[str]:
    return ["--config", str(CONFIGS / "presets" / f"{name}.yaml")]


def test_debug_runs_one_batch_and_writes_nothing(tutorial: list[str], tmp_path: Path) -> None:
    fit = main(["fit", *tutorial, *preset("debug")])
    assert fit.trainer.global_step == 1
    checkpoint = tmp_path / "weights.ckpt"
    fit.trainer.save_checkpoint(checkpoint)
    test = main(["test", *tutorial, *preset("debug"), "--ckpt_path", str(checkpoint)])
    assert test.trainer.callback_metrics["test/loss"] > 0
    assert list(Path().iterdir()) == []  # no run folder, config, checkpoint or report


def test_overfit_memorises_two_batches_without_augmentation(tutorial: list[str]) -> None:
    no_dropout = ["--model.init_args.net.init_args.dropout", "0"]  # regularisation off, as the preset advises
    cli = main(["fit", *tutorial, *no_dropout, "--data.augment", "true", *preset("overfit")])
    assert cli.trainer.num_training_batches == 2
    assert not cli.datamodule.augment and cli.datamodule.train_set.augmentation is None
    assert cli.trainer.callback_metrics["train/loss_epoch"] < 0.02


def test_gpu_preset_runs_in_bf16_with_channels_last(tutorial: list[str]) -> None:
    on_cpu = ["--trainer.accelerator", "cpu", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
              "--trainer.limit_val_batches", "1"]  # fmt: skip
    cli = main(["fit", *tutorial, *preset("gpu"), *on_cpu])
    assert cli.trainer.precision == "bf16-mixed" and torch.backends.cudnn.benchmark
    conv = cli.model.net.conv2.weight  # (conv1 has one input channel: both layouts are the same)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()


def test_ddp_preset_asks_for_every_gpu_with_synchronised_batch_norm(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(CONFIGS / "demo.yaml"), *preset("gpu"), *preset("ddp"), "--print_config"])
    trainer = __import__("yaml").safe_load(capsys.readouterr().out)["trainer"]
    assert (trainer["strategy"], trainer["devices"], trainer["sync_batchnorm"]) == ("ddp", -1, True)
    assert (trainer["accelerator"], trainer["precision"]) == ("gpu", "bf16-mixed")
