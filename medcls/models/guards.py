"""What a model refuses: a checkpoint that does not fit it, images its net cannot take, training that diverged."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer
from torch import Tensor, nn

from medcls.errors import CheckpointError, ConfigError, TrainingError


def check_checkpoint(
    checkpoint: Mapping[str, Any],
    tasks: Mapping[str, int],
    class_names: Mapping[str, list[str]],
    weights: Mapping[str, Tensor],
) -> None:
    """Refuse, with one message, a checkpoint of other tasks or classes, of another network, or non-finite weights.

    Args:
        checkpoint: The checkpoint's contents.
        tasks: The tasks of the model (the data's).
        class_names: The class names of the model's tasks (the data's); a checkpoint saved before medcls kept class
            names is compared on its tasks alone.
        weights: The model's state dict, whose names and shapes the checkpoint's must have.

    Raises:
        CheckpointError: Naming what the checkpoint holds and what this model and its data expect.
    """
    saved_tasks = checkpoint.get("hyper_parameters", {}).get("tasks")
    if saved_tasks is not None and dict(saved_tasks) != dict(tasks):
        raise CheckpointError(
            f"the checkpoint was trained for tasks {dict(saved_tasks)}, but the data has tasks {dict(tasks)}; "
            "use a checkpoint trained on this data set (or a data set with the same tasks)."
        )
    saved_names = checkpoint.get("hyper_parameters", {}).get("class_names")
    if saved_names is not None and {t: list(n) for t, n in saved_names.items()} != dict(class_names):
        raise CheckpointError(
            f"the checkpoint was trained on the classes {dict(saved_names)}, but the data has the classes "
            f"{dict(class_names)}; use a checkpoint trained on data of the same classes, or give the data the "
            "checkpoint's class names in the same order (--data.class_names)."
        )
    state = checkpoint.get("state_dict", {})
    saved = {name: tuple(tensor.shape) for name, tensor in state.items()}
    expected = {name: tuple(tensor.shape) for name, tensor in weights.items()}
    if saved != expected:
        missing = sorted(expected.keys() - saved.keys())
        unexpected = sorted(saved.keys() - expected.keys())
        reshaped = sorted(k for k in expected.keys() & saved.keys() if expected[k] != saved[k])
        raise CheckpointError(
            "the checkpoint holds a different network than the configured model "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(reshaped)} differently shaped "
            f"weights, e.g. {(missing + unexpected + reshaped)[:3]}); "
            "pass a checkpoint of this model, or the model the checkpoint was trained with."
        )
    broken = non_finite_weights(state)
    if broken:
        raise CheckpointError(
            f"the checkpoint holds NaN or infinite weights ({len(broken)} tensors, e.g. {broken[0]}): it was "
            "saved by a run that diverged; use a checkpoint saved before the divergence."
        )


def check_input_shape(net: nn.Module, shape: tuple[int, ...]) -> None:
    """Refuse, before anything runs, a net that cannot take images of ``shape`` (C x H x W).

    One forward pass of a single zero image in evaluation mode, without gradients (and without compiling).

    Raises:
        ConfigError: Naming the net, the shape and the library's reason.
    """
    training = net.training
    try:
        with torch.no_grad():
            net.eval().forward(torch.zeros(1, *shape))
    except (RuntimeError, ValueError, IndexError, AssertionError) as error:  # timm's ViTs assert their size
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        size = " x ".join(map(str, shape))
        raise ConfigError(
            f"{type(net).__name__} cannot take the data's {size} (channels x height x width) images: "
            f"{reason}. Serve other images (e.g. a larger --data.input_size, or the channels the net takes) or "
            "configure the net for them (e.g. --model.net.in_chans)."
        ) from error
    finally:
        net.train(training)


def non_finite_weights(state_dict: Mapping[str, Tensor]) -> list[str]:
    """The names of the floating-point tensors of a state dict holding a NaN or an infinity."""
    return [name for name, tensor in state_dict.items() if tensor.is_floating_point() and not tensor.isfinite().all()]


def stop_if_diverged(trainer: Trainer, finite: Tensor, what: str) -> None:
    """Raise a TrainingError unless ``finite`` holds on every process (one decision, taken by all of them).

    Args:
        trainer: The trainer running the fit.
        finite: Whether ``what`` is finite on this process.
        what: What was checked, for the message (e.g. ``the validation loss``).
    """
    if trainer.strategy.reduce_boolean_decision(bool(finite), all=True):
        return
    raise TrainingError(
        f"{what} is NaN or infinite (epoch {trainer.current_epoch}, step {trainer.global_step}): training diverged "
        f"and was stopped before saving the diverged weights. {remedy(trainer)}"
    )


def remedy(trainer: Trainer) -> str:
    """What to do about a diverged fit: where its last good weights are, and what to change."""
    saved = [callback.best_model_path for callback in trainer.checkpoint_callbacks if callback.best_model_path]
    kept = f"The checkpoints saved before, in {Path(saved[0]).parent}, hold good weights. " if saved else ""
    lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
    rate = f", now {lr:g}" if lr is not None else ""
    return (
        f"{kept}Lower the learning rate (--model.optimizer.lr{rate}) or clip the gradients "
        "(--trainer.gradient_clip_val 1.0)."
    )
