"""The ``medcls`` command: LightningCLI in subclass mode with the project's defaults, links and guards."""

from __future__ import annotations

import importlib
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from jsonargparse import Namespace
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

import medcls.models  # noqa: F401  (imported so that configs can name models and nets by class name alone)
import medcls.nets  # noqa: F401
from medcls.callbacks import EarlyStopping, EvaluationReport
from medcls.data import TaskDataModule
from medcls.errors import CheckpointError, MedclsError
from medcls.io import AtomicCheckpointIO

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
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        # Lightning's save_last writes last.ckpt only when the best one improves: a checkpoint of its own.
        parser.add_lightning_class_args(ModelCheckpoint, "last_checkpoint")
        parser.set_defaults(
            {
                "last_checkpoint.monitor": None,
                "last_checkpoint.filename": "last",
                "last_checkpoint.enable_version_counter": False,
            }
        )
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.link_arguments("checkpoint.monitor", "early_stopping.monitor")
        parser.link_arguments("checkpoint.mode", "early_stopping.mode")
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.add_lightning_class_args(EvaluationReport, "report")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The trainer, writing checkpoints atomically, without the callbacks that have nothing to do in this run.

        Without a logger, the learning-rate monitor (which would refuse to run); in a ``fast_dev_run``, which
        writes nothing, the checkpoints and the report (Lightning would still create their folders in the
        working directory).
        """
        trainer = super().instantiate_trainer(**kwargs)
        idle = (LearningRateMonitor,) if not trainer.loggers else ()
        idle += (ModelCheckpoint, EvaluationReport) if trainer.fast_dev_run else ()
        trainer.callbacks = [callback for callback in trainer.callbacks if not isinstance(callback, idle)]
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer

    def _parse_ckpt_path(self) -> None:
        """Do nothing: ``parse_arguments`` already took the checkpoint's classes as defaults.

        Lightning's own version re-applies the checkpoint's hyper-parameters over the command line; as
        defaults, the command line (and the data module's tasks) win, and no pretrained weights file is needed.
        """

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse with the model and data of ``--ckpt_path`` as defaults; refuse to evaluate without one."""
        argv = sys.argv[1:] if args is None else args
        if isinstance(argv, list):
            subcommands = getattr(self, "_subcommand_parsers", {})  # none when built with run=False
            subcommand = next((arg for arg in argv if arg in subcommands), None)
            ckpt_path = _option_value(argv, "--ckpt_path")
            if subcommand and ckpt_path and ckpt_path not in RUN_CHECKPOINTS:
                subcommands[subcommand].set_defaults(_classes_of(_load_checkpoint(ckpt_path)))
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        _name_experiment(config)
        if not subcommand:
            return
        if config.checkpoint.save_top_k != 1 and "{" not in config.checkpoint.filename:
            raise MedclsError(
                f"--checkpoint.save_top_k {config.checkpoint.save_top_k} keeps several checkpoints, but they would "
                f"all be named {config.checkpoint.filename!r}; give them distinct names, e.g. "
                "--checkpoint.filename 'epoch{epoch:03d}'."
            )
        if config.ckpt_path in RUN_CHECKPOINTS:
            config.ckpt_path = str(_latest_run_checkpoint(config, config.ckpt_path))
        _check_checkpoint(subcommand, config)
        if subcommand == "fit" and config.ckpt_path:
            _continue_run(config)


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
    """The best or last checkpoint of the newest run of the configured experiment.

    The best is ``best.ckpt``, or with top-k checkpoints under other names, the best one ``last.ckpt`` records.
    """
    logger = _tensorboard_logger(config)
    if logger is None:
        raise CheckpointError(f"--ckpt_path {which} needs the TensorBoard logger to find the runs; pass a path.")
    runs = Path(logger.init_args.save_dir) / logger.init_args.name
    found = sorted(runs.glob("version_*/checkpoints/*.ckpt"), key=lambda path: path.stat().st_mtime)
    if not found:
        raise CheckpointError(
            f"--ckpt_path {which}: experiment {runs} has no run with checkpoints; "
            "train one with 'medcls fit' first, or pass the path of a checkpoint."
        )
    checkpoints = found[-1].parent
    path = checkpoints / f"{which}.ckpt"
    if which == "best" and not path.exists() and (checkpoints / "last.ckpt").exists():
        path = Path(_recorded_best(_load_checkpoint(str(checkpoints / "last.ckpt"))) or path)
    if not path.exists():
        raise CheckpointError(f"--ckpt_path {which}: the newest run of {runs} has no {path}; pass a checkpoint's path.")
    return path


def _recorded_best(checkpoint: dict[str, Any]) -> str | None:
    """The path of the best checkpoint, as the checkpoint callback with a monitored metric recorded it."""
    for key, state in checkpoint.get("callbacks", {}).items():
        if key.startswith("ModelCheckpoint") and state.get("monitor") and state.get("best_model_path"):
            return state["best_model_path"]
    return None


def _continue_run(config: Namespace) -> None:
    """Resume a fit in the run folder of its checkpoint, so that its logs and checkpoints continue there."""
    logger = _tensorboard_logger(config)
    if logger is None or logger.init_args.get("version") is not None:
        return
    checkpoints = Path(config.ckpt_path).resolve().parent
    experiment = (Path(logger.init_args.save_dir) / logger.init_args.name).resolve()
    if checkpoints.name == "checkpoints" and checkpoints.parent.parent == experiment:
        logger.init_args.version = checkpoints.parent.name


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


def command() -> None:
    """The ``medcls`` console command (returns nothing, so that its exit status is 0 after a run)."""
    main()


def main(args: list[str] | None = None, *, run: bool = True) -> MedclsCLI:
    """Run ``medcls fit | validate | test | predict``; ``args`` defaults to the command line.

    With ``run=False`` the arguments take no subcommand: the CLI is returned with its trainer, model and data
    module built but not run, for scripts that drive them (e.g. ``scripts/lr_find.py``).
    """
    # Raised inside Lightning by the newest torch; nothing a user can act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    try:
        return MedclsCLI(
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
            run=run,
        )
    except MedclsError as error:
        sys.exit(f"medcls: error: {error}")
