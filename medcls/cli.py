"""The ``medcls`` command: LightningCLI in subclass mode with the project's defaults, links and guards."""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ArgumentError, Namespace
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping as LightningEarlyStopping
from lightning.pytorch.callbacks import LearningRateMonitor, ProgressBar
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger

import medcls.nets  # noqa: F401  (imported so that configs can name nets by class name alone)
from medcls.callbacks import EarlyStopping, EvaluationReport, LineProgress, ModelCheckpoint, TrainingPreview
from medcls.callbacks.progress import BarProgress
from medcls.console import console, quiet_libraries
from medcls.data import TaskDataModule
from medcls.errors import DEBUG_VARIABLE, CheckpointError, ConfigError
from medcls.io import AtomicCheckpointIO, load_checkpoint
from medcls.models import Classifier
from medcls.nets import without_weights_files
from medcls.runs import RUN_CHECKPOINTS, RunFolder, continue_run, name_experiment, resolve_run_checkpoint

EVALUATING_SUBCOMMANDS = ("validate", "test", "predict")
LINKED_FROM_DATA = ("tasks", "binary_views", "class_names", "ordinal_tasks")
"""The data module's attributes linked into the model's arguments of the same names: always the data's."""
FIT_ONLY_CALLBACKS = (LightningModelCheckpoint, LightningEarlyStopping, LearningRateMonitor)
"""Callbacks with nothing to do outside ``fit`` (a checkpoint callback would only warn that its folder changed)."""


class MedclsCLI(LightningCLI):
    """LightningCLI with medcls' defaults: TensorBoard under ``runs/``, best and last checkpoints, a report."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        argv = kwargs.get("args")
        self._requested = _requested_subcommand(sys.argv[1:] if argv is None else argv)
        super().__init__(*args, **kwargs)

    def subcommands(self) -> dict[str, set[str]]:  # type: ignore[override]
        """Lightning's subcommands; only the one asked for, if any (each one's parser takes a tenth of a second).

        Without a subcommand (``medcls --help``, a typing error) every one is built, so that all are listed.
        """
        every = LightningCLI.subcommands()
        return {self._requested: every[self._requested]} if self._requested in every else every

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link the data's tasks into the model and add the callbacks every run has."""
        for name in LINKED_FROM_DATA:
            parser.link_arguments(f"data.{name}", f"model.init_args.{name}", apply_on="instantiate")
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
        parser.add_lightning_class_args(TrainingPreview, "preview")

    def after_instantiate_classes(self) -> None:
        """Keep the data module's config in the checkpoints, so that a checkpoint alone rebuilds its data.

        Lightning keeps it only for data modules that save their hyper-parameters themselves.
        """
        data = self.config_dump.get("data") if isinstance(self.datamodule, TaskDataModule) else None
        if isinstance(data, dict) and "class_path" in data and not self.datamodule.hparams:
            hparams = {"_class_path": data["class_path"], **(data.get("init_args") or {})}
            # Not logged: Lightning refuses to log data and model settings of one name (binary_views) that differ.
            self.datamodule.save_hyperparameters(hparams, logger=False)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The trainer, writing checkpoints atomically, with the callbacks that have something to do in this run.

        Left out: outside ``fit``, the checkpoints, early stopping and learning-rate monitor; outside ``test`` and
        ``predict``, the report (Lightning calls every callback several times a step); without a logger, the
        learning-rate monitor (which would refuse to run); in a ``fast_dev_run``, which writes nothing, the
        checkpoints and the report (Lightning would still create their folders). Progress is shown in tqdm's bars
        redrawn a few times a second on a terminal (Lightning's redraw after every batch), elsewhere in plain lines.
        """
        config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        callbacks = [self._get(self.config_init, key) for key in self._parser(self.subcommand).callback_keys]
        idle = ()
        if self.subcommand in EVALUATING_SUBCOMMANDS:
            idle = FIT_ONLY_CALLBACKS
            config["enable_checkpointing"] = False  # else Lightning adds a checkpoint callback of its own
            # The checkpoint holds the states of the fit's callbacks, which have nothing to restore in this run.
            warnings.filterwarnings("ignore", message="Be aware that when using `ckpt_path`, callbacks used")
        idle += (EvaluationReport,) if self.subcommand not in ("test", "predict") else ()
        idle += (LightningModelCheckpoint, EvaluationReport) if config.get("fast_dev_run") else ()
        callbacks = [callback for callback in callbacks if not isinstance(callback, idle)]
        configured = config.get("callbacks") or []
        bars = [c for c in (configured if isinstance(configured, list) else [configured]) if isinstance(c, ProgressBar)]
        if config.get("enable_progress_bar") is not False and not bars:
            callbacks.append(BarProgress() if sys.stdout.isatty() else LineProgress())
        trainer = self._instantiate_trainer(config, callbacks)
        if not trainer.loggers:
            trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, LearningRateMonitor)]
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer

    def _parse_ckpt_path(self) -> None:
        """Do nothing: ``parse_arguments`` already took the checkpoint's classes as defaults.

        Lightning's own version re-applies the checkpoint's hyper-parameters over the command line; as
        defaults, the command line (and the data module's tasks) win, and no pretrained weights file is needed.
        """

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse with the model and data of ``--ckpt_path`` as defaults; refuse to evaluate without one.

        Where the command line or a config names another model, net or data class than the checkpoint's, that
        group is parsed without the checkpoint's settings, which would otherwise mix into it (e.g. MNIST's
        ``val_size`` into a fundus data module).
        """
        argv = sys.argv[1:] if args is None else args
        subcommand, defaults = None, {}
        subcommands = getattr(self, "_subcommand_parsers", {})  # none when built with run=False
        if isinstance(argv, list) and self._requested in subcommands:
            subcommand = self._requested
            ckpt_path = _option_value(argv, "--ckpt_path")
            if ckpt_path and ckpt_path not in RUN_CHECKPOINTS:
                defaults = _classes_of(load_checkpoint(ckpt_path))
                subcommands[subcommand].set_defaults(defaults)
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as error:
            raise _broken_config(argv if isinstance(argv, list) else []) or error from error
        if defaults:
            chosen = self.config[subcommand]
            other = [group for group, default in defaults.items() if _classes(chosen[group]) != _classes(default)]
            if other:
                subcommands[subcommand].set_defaults(dict.fromkeys(other))
                super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        name_experiment(config)
        if not subcommand:
            return
        if config.checkpoint.save_top_k != 1 and "{" not in config.checkpoint.filename:
            raise ConfigError(
                f"--checkpoint.save_top_k {config.checkpoint.save_top_k} keeps several checkpoints, but they would "
                f"all be named {config.checkpoint.filename!r}; give them distinct names, e.g. "
                "--checkpoint.filename 'epoch{epoch:03d}'."
            )
        resolve_run_checkpoint(config)
        _check_checkpoint_given(subcommand, config)
        if subcommand == "fit" and config.ckpt_path:
            continue_run(config)

    def _run_subcommand(self, subcommand: str) -> None:
        """Run the subcommand in a run folder of its own, after the checks that need nothing written.

        The checkpoint is checked against the model and the data, and the net against the data's input size,
        before the run folder is claimed; if the command fails before saving a checkpoint, the folder it
        claimed is removed again.
        """
        if isinstance(self.model, Classifier):
            ckpt_path = self.config[subcommand].get("ckpt_path")
            if ckpt_path is not None:
                self.model.check_checkpoint(load_checkpoint(ckpt_path))
            if isinstance(self.datamodule, TaskDataModule):
                self.model.check_input_shape(self.datamodule.input_shape)
        claimed = self._claim_run_folder()
        try:
            super()._run_subcommand(subcommand)
        except BaseException:
            if claimed is not None:
                claimed.release()
            raise

    def _claim_run_folder(self) -> RunFolder | None:
        """Create this run's folder (on the first process only), so that no concurrent command can take it too."""
        logger = self.trainer.logger
        if not isinstance(logger, TensorBoardLogger) or logger._version is not None or self.trainer.global_rank:
            return None
        claimed = RunFolder.claim(Path(logger.root_dir))
        # Lightning computes the version where it is not set, and only reads it where it is: set it here.
        logger._version = claimed.version
        return claimed


def _requested_subcommand(argv: Any) -> str | None:
    """The subcommand of a command line: its first argument that is neither an option nor ``--config``'s file."""
    if not isinstance(argv, list):
        return None
    arguments = iter(argv)
    for arg in arguments:
        if arg in ("-c", "--config"):
            next(arguments, None)
        elif not arg.startswith("-"):
            return arg
    return None


def _option_value(argv: list[str], option: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == option and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return None


def _broken_config(argv: Any) -> ConfigError | None:
    """The first ``--config`` file that is not valid YAML, named (jsonargparse's message names none)."""
    configs = (
        [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg in ("--config", "-c")] if isinstance(argv, list) else []
    )
    for config in configs:
        try:
            with open(config, encoding="utf-8") as file:
                yaml.safe_load(file)
        except OSError:  # jsonargparse names a missing file itself
            continue
        except yaml.YAMLError as error:
            return ConfigError(f"--config {config} is not a readable YAML file: {' '.join(str(error).split())}")
    return None


def _classes(group: Any) -> tuple[str | None, str | None]:
    """The class of a model or data config and, for a model, the class of its net."""
    if group is None:
        return None, None
    init_args = group.get("init_args") or {}
    net = init_args.get("net") if hasattr(init_args, "get") else None
    return group.get("class_path"), net.get("class_path") if hasattr(net, "get") else None


def _classes_of(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The model and data module configs a checkpoint was trained with, as parser defaults."""
    defaults = {}
    for key, hparams_key in (("model", "hyper_parameters"), ("data", "datamodule_hyper_parameters")):
        hparams = dict(checkpoint.get(hparams_key) or {})
        class_path = hparams.pop("_class_path", None)
        if class_path:
            hparams.pop("_instantiator", None)
            for linked in LINKED_FROM_DATA:
                hparams.pop(linked, None)
            defaults[key] = {"class_path": class_path, "init_args": hparams}
    net = defaults.get("model", {}).get("init_args", {}).get("net")
    if isinstance(net, dict):  # the checkpoint holds the weights: no pretrained weights to fetch or find
        defaults["model"]["init_args"]["net"] = without_weights_files(net)
    return defaults


def _check_checkpoint_given(subcommand: str, config: Namespace) -> None:
    needs_checkpoint = getattr(_model_class(config), "needs_checkpoint", True)
    if config.get("ckpt_path") is None and subcommand in EVALUATING_SUBCOMMANDS and needs_checkpoint:
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


def command(args: list[str] | None = None) -> None:
    """The ``medcls`` console command: :func:`main`, any error ending it with one ``medcls: error:`` line.

    ``--debug`` anywhere in the arguments (or ``MEDCLS_DEBUG=1``) shows an error's traceback instead.
    """
    argv = sys.argv[1:] if args is None else list(args)
    if "--debug" in argv:
        argv = [arg for arg in argv if arg != "--debug"]
        os.environ[DEBUG_VARIABLE] = "1"  # also for the processes Lightning starts under DDP
        if args is None:
            sys.argv = [sys.argv[0], *argv]  # which Lightning's DDP launcher starts them with
    with console("medcls"):
        main(None if args is None else argv)


def main(args: list[str] | None = None, *, run: bool = True) -> MedclsCLI:
    """Run ``medcls fit | validate | test | predict``; ``args`` defaults to the command line.

    Errors are raised (:func:`command` turns them into one line). With ``run=False`` the arguments take no
    subcommand: the CLI is returned with its trainer, model and data module built but not run, for scripts that
    drive them (e.g. ``scripts/lr_find.py``).
    """
    quiet_libraries()
    return MedclsCLI(
        LightningModule,
        TaskDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={
            "prog": "medcls",
            "description": "Medical image classification on PyTorch Lightning. An error is reported in one line; "
            "--debug (or MEDCLS_DEBUG=1) shows its traceback.",
            "exit_on_error": False,
        },
        trainer_defaults={
            "logger": {
                "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                "init_args": {"save_dir": "runs", "name": None, "default_hp_metric": False},
            }
        },
        args=args,
        run=run,
    )
