"""The ``medcls`` command: LightningCLI in subclass mode with the project's defaults, links and guards."""

from __future__ import annotations

import importlib
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from jsonargparse import Namespace
from lightning.pytorch import LightningModule
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

import medcls.models  # noqa: F401  (imported so that configs can name models and nets by class name alone)
import medcls.nets  # noqa: F401
from medcls.callbacks import EvaluationReport
from medcls.data import TaskDataModule
from medcls.errors import CheckpointError, MedclsError

EVALUATING_SUBCOMMANDS = ("validate", "test", "predict")
RUN_CHECKPOINTS = ("best", "last")  # --ckpt_path best|last: that file of the experiment's newest run
NO_PRETRAINED_WEIGHTS = {"pretrained": False, "weights": None}  # the nets' options that load weights files


class MedclsCLI(LightningCLI):
    """LightningCLI with medcls' defaults: TensorBoard under ``runs/``, best and last checkpoints, a report."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link the data's tasks into the model and add the callbacks every run has."""
        parser.link_arguments("data.tasks", "model.init_args.tasks", apply_on="instantiate")
        parser.link_arguments("data.binary_views", "model.init_args.binary_views", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/loss",
                "checkpoint.mode": "min",
                "checkpoint.filename": "best",
                "checkpoint.save_last": True,
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.add_lightning_class_args(EvaluationReport, "report")

    def _parse_ckpt_path(self) -> None:
        """Do nothing: ``parse_arguments`` already took the checkpoint's classes as defaults.

        Lightning's own version re-applies the checkpoint's hyper-parameters over the command line; as
        defaults, the command line (and the data module's tasks) win, and no pretrained weights file is needed.
        """

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse with the model and data of ``--ckpt_path`` as defaults; refuse to evaluate without one."""
        argv = sys.argv[1:] if args is None else args
        if isinstance(argv, list):
            subcommand = next((arg for arg in argv if arg in self._subcommand_parsers), None)
            ckpt_path = _option_value(argv, "--ckpt_path")
            if subcommand and ckpt_path and ckpt_path not in RUN_CHECKPOINTS:
                self._subcommand_parsers[subcommand].set_defaults(_classes_of(_load_checkpoint(ckpt_path)))
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand:
            config = self.config[subcommand]
            _name_experiment(config)
            if config.ckpt_path in RUN_CHECKPOINTS:
                config.ckpt_path = str(_latest_run_checkpoint(config, config.ckpt_path))
            _check_checkpoint(subcommand, config)


def _tensorboard_logger(config: Namespace) -> Namespace | None:
    logger = config.trainer.logger
    if isinstance(logger, Namespace) and logger.class_path.endswith("TensorBoardLogger"):
        return logger
    return None


def _name_experiment(config: Namespace) -> None:
    """Name the experiment after the data and the net when no name was configured."""
    logger = _tensorboard_logger(config)
    if logger is not None and logger.init_args.name is None:
        logger.init_args.name = _experiment_name(config)


def _latest_run_checkpoint(config: Namespace, which: str) -> Path:
    """The newest ``best.ckpt`` or ``last.ckpt`` among the runs of the configured experiment."""
    logger = _tensorboard_logger(config)
    if logger is None:
        raise CheckpointError(f"--ckpt_path {which} needs the TensorBoard logger to find the runs; pass a path.")
    runs = Path(logger.init_args.save_dir) / logger.init_args.name
    found = sorted(runs.glob(f"version_*/checkpoints/{which}.ckpt"), key=lambda path: path.stat().st_mtime)
    if not found:
        raise CheckpointError(
            f"--ckpt_path {which}: no run of experiment {runs} has checkpoints/{which}.ckpt; "
            "train one with 'medcls fit' first, or pass the path of a checkpoint."
        )
    return found[-1]


def _experiment_name(config: Namespace) -> str:
    data = config.data.class_path.rsplit(".", 1)[-1].removesuffix("DataModule")
    net = config.model.init_args.get("net")
    parts = [data] + ([net.class_path.rsplit(".", 1)[-1].removesuffix("Net")] if isinstance(net, Namespace) else [])
    return "-".join(parts).lower()


def _option_value(argv: list[str], option: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == option and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return None


def _classes_of(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The model and data module configs a checkpoint was trained with, as parser defaults."""
    defaults = {}
    for key, hparams_key in (("model", "hyper_parameters"), ("data", "datamodule_hyper_parameters")):
        hparams = dict(checkpoint.get(hparams_key) or {})
        class_path = hparams.pop("_class_path", None)
        if class_path:
            hparams.pop("_instantiator", None)
            for link_target in ("tasks", "binary_views"):  # always the data module's
                hparams.pop(link_target, None)
            defaults[key] = {"class_path": class_path, "init_args": hparams}
    net = defaults.get("model", {}).get("init_args", {}).get("net")
    if isinstance(net, dict):  # the checkpoint holds the weights: no pretrained weights to fetch or find
        init_args = net.setdefault("init_args", {})
        for option, none in NO_PRETRAINED_WEIGHTS.items():
            if option in init_args:
                init_args[option] = none
    return defaults


def _load_checkpoint(ckpt_path: str) -> dict[str, Any]:
    path = Path(ckpt_path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; check --ckpt_path.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(error).__name__}: {error}).") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no state_dict); pass a checkpoint medcls wrote.")
    return checkpoint


def _check_checkpoint(subcommand: str, config: Namespace) -> None:
    ckpt_path = config.get("ckpt_path")
    if ckpt_path is not None:
        _load_checkpoint(ckpt_path)
    elif subcommand in EVALUATING_SUBCOMMANDS and getattr(_model_class(config), "needs_checkpoint", True):
        raise CheckpointError(
            f"'medcls {subcommand}' needs trained weights: pass --ckpt_path "
            "runs/<experiment>/version_<N>/checkpoints/best.ckpt (or last.ckpt). "
            "Without it the freshly initialised model would be evaluated."
        )


def _model_class(config: Namespace) -> type | None:
    """The configured model class (an ensemble brings its own weights and needs no ``--ckpt_path``)."""
    if not isinstance(config.get("model"), Namespace):
        return None
    module, name = config.model.class_path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name, None)


def main(args: list[str] | None = None) -> None:
    """Run ``medcls fit | validate | test | predict``; ``args`` defaults to the command line."""
    # Raised inside Lightning by the newest torch; nothing a user can act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    try:
        MedclsCLI(
            LightningModule,
            TaskDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"prog": "medcls", "description": "Medical image classification on PyTorch Lightning."},
            trainer_defaults={
                "logger": {
                    "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                    "init_args": {"save_dir": "runs", "name": None, "default_hp_metric": False},
                }
            },
            args=args,
        )
    except MedclsError as error:
        sys.exit(f"medcls: error: {error}")
