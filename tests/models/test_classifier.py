from functools import partial
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn

from medcls.data import MNISTDataModule, TaskDataModule
from medcls.errors import ConfigError, TrainingError
from medcls.models import Classifier
from medcls.nets import TutorialNet
from tests.conftest import write_mnist


class TwoHeadNet(nn.Module):
    """A linear net with a head per task and an auxiliary head for the first task."""

    def __init__(self, tasks: dict[str, int]) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({name: nn.Linear(12, n) for name, n in tasks.items()})
        first, n = next(iter(tasks.items()))
        self.heads[f"{first}_aux"] = nn.Linear(12, n)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: head(x.flatten(1)) for name, head in self.heads.items()}


def batch() -> dict:
    generator = torch.Generator().manual_seed(0)
    return {
        "image": torch.randn(6, 3, 2, 2, generator=generator),
        "dr": torch.randint(0, 5, (6,), generator=generator),
        "dme": torch.randint(0, 3, (6,), generator=generator),
        "id": [str(i) for i in range(6)],
    }


def test_loss_is_weighted_sum_over_heads_and_metrics_use_task_heads() -> None:
    model = Classifier(TwoHeadNet, {"dr": 5, "dme": 3}, loss_weights={"dr_aux": 0.25, "dme": 2.0})
    data = batch()
    logits = model(data["image"])
    assert set(logits) == {"dr", "dme", "dr_aux"}
    expected = (
        F.cross_entropy(logits["dr"], data["dr"])
        + 2.0 * F.cross_entropy(logits["dme"], data["dme"])
        + 0.25 * F.cross_entropy(logits["dr_aux"], data["dr"])
    )
    torch.testing.assert_close(model.loss(logits, data), expected)
    probabilities = model.probabilities(logits)
    assert set(probabilities) == {"dr", "dme"}
    torch.testing.assert_close(probabilities["dme"].sum(1), torch.ones(6))
    assert set(model.metrics["test"]) == {"dr", "dme"}


def test_aux_heads_receive_gradient() -> None:
    model = Classifier(TwoHeadNet, {"dr": 5, "dme": 3}, loss_weights={"dr_aux": 0.25})
    data = batch()
    model.loss(model(data["image"]), data).backward()
    assert model.net.heads["dr_aux"].weight.grad.abs().sum() > 0


def test_single_tensor_output_is_wrapped_for_its_task() -> None:
    model = Classifier(TutorialNet, {"digit": 10})
    assert set(model(torch.randn(2, 1, 28, 28))) == {"digit"}


def test_unknown_loss_weight_head_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown heads \['dm'\]"):
        Classifier(TwoHeadNet, {"dr": 5, "dme": 3}, loss_weights={"dm": 1.0})


def test_overfitting_two_batches_drives_training_loss_to_zero(tmp_path) -> None:
    """The lecture's sanity check: a network that cannot memorise two batches has a bug."""
    torch.manual_seed(0)
    data = MNISTDataModule(write_mnist(tmp_path), val_size=100, batch_size=32)
    model = Classifier(partial(TutorialNet, dropout=0.0), {"digit": 10}, optimizer=partial(torch.optim.Adam, lr=3e-3))
    trainer = Trainer(
        overfit_batches=2, max_epochs=60, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(model, datamodule=data)
    assert trainer.callback_metrics["train/loss_epoch"] < 0.02


def test_class_weighted_loss_uses_the_training_split_weights(synthetic_idrid, tmp_path) -> None:
    from medcls.data import IDRiDDataModule

    data = IDRiDDataModule(synthetic_idrid, cache_dir=tmp_path, image_size=64, input_size=32, preprocess_workers=1)
    model = Classifier(TwoHeadNet, data.tasks, class_weighted_loss=True)
    model.net.heads = torch.nn.ModuleDict({name: nn.Linear(3 * 32 * 32, n) for name, n in model.tasks.items()})
    trainer = Trainer(fast_dev_run=1, logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=data)
    for task in data.tasks:
        torch.testing.assert_close(model.class_weights[task], data.class_weights(task))
    sample = next(iter(data.val_dataloader()))
    logits = model(sample["image"])
    expected = sum(F.cross_entropy(logits[task], sample[task], weight=data.class_weights(task)) for task in data.tasks)
    torch.testing.assert_close(model.loss(logits, sample), expected)


class TrunkNet(nn.Module):
    """A conv trunk with batch norm, and a linear head per task."""

    def __init__(self, tasks: dict[str, int]) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.heads = nn.ModuleDict({name: nn.Linear(4, n) for name, n in tasks.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.trunk(x)
        return {name: head(features) for name, head in self.heads.items()}


class RandomImages(TaskDataModule):
    tasks = {"dr": 5, "dme": 3}

    def setup(self, stage: str) -> None:
        generator = torch.Generator().manual_seed(0)
        images = torch.randn(16, 3, 8, 8, generator=generator) * 3 + 1
        dr, dme = torch.randint(0, 5, (16,), generator=generator), torch.randint(0, 3, (16,), generator=generator)
        self.train_set = self.val_set = self.test_set = [
            {"image": images[i], "dr": dr[i], "dme": dme[i], "id": str(i)} for i in range(16)
        ]


def fit(model: Classifier, epochs: int) -> None:
    Trainer(
        max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
    ).fit(model, datamodule=RandomImages(batch_size=8))  # fmt: skip


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in module.state_dict().items()}


def changed(before: dict[str, torch.Tensor], module: nn.Module) -> set[str]:
    return {name for name, tensor in module.state_dict().items() if not torch.equal(before[name], tensor)}


def test_linear_probe_never_changes_the_trunk_not_even_batch_norm_statistics() -> None:
    model = Classifier(
        TrunkNet, {"dr": 5, "dme": 3}, freeze_trunk_epochs=-1, optimizer=partial(torch.optim.SGD, lr=0.1)
    )
    trunk, heads = snapshot(model.net.trunk), snapshot(model.net.heads)
    fit(model, epochs=2)
    assert not changed(trunk, model.net.trunk)
    assert changed(heads, model.net.heads) == set(heads)


def test_trunk_frozen_for_the_first_epochs_then_trained() -> None:
    model = Classifier(TrunkNet, {"dr": 5, "dme": 3}, freeze_trunk_epochs=1, optimizer=partial(torch.optim.SGD, lr=0.1))
    trunk = snapshot(model.net.trunk)
    fit(model, epochs=1)
    assert not changed(trunk, model.net.trunk)
    fit(model, epochs=2)  # a new fit starts at epoch 0 again: frozen for it, then trained in epoch 1
    assert "0.weight" in changed(trunk, model.net.trunk) and model.net.trunk[0].weight.requires_grad


def test_trunk_learning_rate_is_scaled() -> None:
    model = Classifier(TrunkNet, {"dr": 5}, trunk_lr_factor=0.1, optimizer=partial(torch.optim.AdamW, lr=1e-3))
    optimizer = model.configure_optimizers()
    lrs = {group["name"]: group["lr"] for group in optimizer.param_groups}
    assert lrs == pytest.approx({"heads": 1e-3, "trunk": 1e-4})
    trunk_ids = {id(p) for p in model.net.trunk.parameters()}
    assert {id(p) for p in optimizer.param_groups[1]["params"]} == trunk_ids
    with pytest.raises(ValueError, match="need a net with a trunk"):
        Classifier(TwoHeadNet, {"dr": 5}, trunk_lr_factor=0.1)


def test_focal_loss_is_cross_entropy_scaled_by_confidence() -> None:
    model = Classifier(TwoHeadNet, {"dr": 5, "dme": 3}, loss="focal", focal_gamma=2.0)
    logits = {"dr": torch.tensor([[2.0, 0.0, 0.0, 0.0, 0.0]]), "dme": torch.tensor([[0.0, 0.0, 1.0]])}
    target = {"dr": torch.tensor([0]), "dme": torch.tensor([1])}
    expected = sum(
        (1 - logits[t].softmax(1)[0, target[t][0]]) ** 2 * F.cross_entropy(logits[t], target[t]) for t in logits
    )
    torch.testing.assert_close(model.loss(logits, target), expected)
    plain = Classifier(TwoHeadNet, {"dr": 5, "dme": 3}, loss="focal", focal_gamma=0.0)
    expected_ce = sum(F.cross_entropy(logits[t], target[t]) for t in logits)
    torch.testing.assert_close(plain.loss(logits, target), expected_ce)


def test_regression_task_has_one_output_mse_loss_and_rounded_clipped_predictions() -> None:
    model = Classifier(TrunkNet, {"dr": 5, "dme": 3}, regression_tasks=["dr"])
    assert model.net.heads["dr"].out_features == 1 and model.net.heads["dme"].out_features == 3
    logits = {"dr": torch.tensor([[1.4], [7.0], [-2.0]]), "dme": torch.zeros(3, 3)}
    target = {"dr": torch.tensor([1, 4, 0]), "dme": torch.tensor([0, 1, 2])}
    expected = F.mse_loss(torch.tensor([1.4, 7.0, -2.0]), torch.tensor([1.0, 4.0, 0.0])) + F.cross_entropy(
        logits["dme"], target["dme"]
    )
    torch.testing.assert_close(model.loss(logits, target), expected)
    assert model.probabilities(logits)["dr"].argmax(1).tolist() == [1, 4, 0]
    with pytest.raises(ValueError, match="regression_tasks"):
        Classifier(TrunkNet, {"dr": 5}, regression_tasks=["grade"])


def test_operating_points_are_chosen_on_validation_and_kept_in_the_checkpoint(tmp_path) -> None:
    from medcls.metrics.binary import binary_questions, choose_operating_points

    model = Classifier(TrunkNet, {"dr": 5, "dme": 3}, binary_views={"referable_dr": ("dr", 2)}, target_sensitivity=0.8)
    trainer = Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                      default_root_dir=tmp_path, num_sanity_val_steps=0)  # fmt: skip
    data = RandomImages(batch_size=8)
    trainer.fit(model, datamodule=data)
    model.eval()
    with torch.no_grad():
        probabilities = model.probabilities(model(torch.stack([s["image"] for s in data.val_set])))
    labels = {"dr": torch.stack([s["dr"] for s in data.val_set]).numpy()}
    (question,) = binary_questions({"dr": probabilities["dr"].numpy()}, labels, model.binary_views).values()
    expected = choose_operating_points(*question, sensitivity=0.8, specificity=0.95)
    assert model.operating_points == {"referable_dr": pytest.approx(expected)}

    checkpoint = tmp_path / "model.ckpt"
    trainer.save_checkpoint(checkpoint)
    restored = Classifier.load_from_checkpoint(checkpoint, net=TrunkNet, weights_only=False)
    assert restored.operating_points == model.operating_points


class WeightsTrail(Callback):
    """Records the net's weights after every optimizer step, and those that each validation runs with."""

    def __init__(self) -> None:
        self.after_steps: list[dict[str, torch.Tensor]] = []
        self.validated: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer: Trainer, pl_module: Classifier, *args) -> None:
        self.after_steps.append(snapshot(pl_module.net))

    def on_validation_batch_start(self, trainer: Trainer, pl_module: Classifier, batch, batch_idx: int) -> None:
        if batch_idx == 0:
            self.validated.append(snapshot(pl_module.net))


def test_ema_weights_are_the_moving_average_and_are_validated_checkpointed_and_kept(tmp_path) -> None:
    decay, trail = 0.8, WeightsTrail()
    model = Classifier(TrunkNet, {"dr": 5, "dme": 3}, ema_decay=decay, optimizer=partial(torch.optim.SGD, lr=0.1))
    Trainer(
        max_epochs=2, logger=False, callbacks=[trail, ModelCheckpoint(tmp_path, save_last=True)],
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    ).fit(model, datamodule=RandomImages(batch_size=8))  # fmt: skip
    floats = [name for name, tensor in trail.after_steps[0].items() if tensor.is_floating_point()]
    averages, average = [], trail.after_steps[0]  # the average starts at the weights after the first step
    for raw in trail.after_steps:
        average = {name: decay * average[name] + (1 - decay) * raw[name] for name in floats} if averages else average
        averages.append(average)
    steps_per_epoch = 2
    for epoch, validated in enumerate(trail.validated):
        expected = averages[(epoch + 1) * steps_per_epoch - 1]
        for name in floats:
            torch.testing.assert_close(validated[name], expected[name], msg=name)
    checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=False)  # hparams hold the net class
    raw, ema = trail.after_steps[-1], averages[-1]
    for name in floats:
        torch.testing.assert_close(checkpoint["state_dict"][f"net.{name}"], ema[name], msg=name)
        torch.testing.assert_close(model.net.state_dict()[name], ema[name], msg=name)  # the weights after fit
        torch.testing.assert_close(checkpoint["current_model_state"][f"net.{name}"], raw[name], msg=name)
    assert not torch.equal(ema["trunk.0.weight"], raw["trunk.0.weight"])
    with pytest.raises(ValueError, match="ema_decay must be between 0 and 1"):
        Classifier(TrunkNet, {"dr": 5}, ema_decay=1.5)


def test_compiled_net_computes_the_same_and_keeps_its_checkpoint_keys() -> None:
    torch.manual_seed(0)
    plain = Classifier(TrunkNet, {"dr": 5, "dme": 3})
    compiled = Classifier(TrunkNet, {"dr": 5, "dme": 3}, compile=True)
    compiled.load_state_dict(plain.state_dict())  # the same keys: checkpoints of either load into the other
    images = batch()["image"].repeat(1, 1, 4, 4)
    plain.eval(), compiled.eval()
    with torch.no_grad():
        expected, got = plain(images), compiled(images)
    for head in expected:
        torch.testing.assert_close(got[head], expected[head])
    assert compiled.net._compiled_call_impl is not None and plain.net._compiled_call_impl is None


class CountConversions(Callback):
    """Counts tensor-to-Python conversions (each a GPU synchronisation) in the training steps of an epoch."""

    CONVERSIONS = ("item", "tolist", "__bool__", "__int__", "__float__")

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counting = False
        self.count = 0
        for name in self.CONVERSIONS:
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._counted(original))

    def _counted(self, original):
        def conversion(tensor: torch.Tensor, *args, **kwargs):
            self.count += self.counting
            return original(tensor, *args, **kwargs)

        return conversion

    def on_train_batch_start(self, trainer: Trainer, pl_module: Classifier, batch, batch_idx: int) -> None:
        # Up to the start of the epoch's last step: what follows it (validation, epoch end) runs once per epoch.
        self.counting = 2 <= batch_idx < trainer.num_training_batches - 1


def test_training_steps_between_logging_steps_never_synchronise(tmp_path, monkeypatch) -> None:
    """No per-step ``.item()`` and the like: on a GPU each would stall the queue of kernels."""
    counter = CountConversions(monkeypatch)
    model = Classifier(TrunkNet, {"dr": 5, "dme": 3}, optimizer=partial(torch.optim.SGD, lr=0.1))
    Trainer(
        max_epochs=1, default_root_dir=tmp_path, log_every_n_steps=100, callbacks=[counter], enable_model_summary=False,
        num_sanity_val_steps=0,
    ).fit(model, datamodule=RandomImages(batch_size=1))  # fmt: skip
    # 16 steps with a logger, a progress bar and checkpoints, as in a real run
    assert counter.count == 0


class GradientNorms(Callback):
    """The gradient norm before clipping, and the one the optimizer steps with."""

    def __init__(self) -> None:
        self.computed: list[float] = []
        self.stepped: list[float] = []

    def on_train_start(self, trainer: Trainer, pl_module: Classifier) -> None:
        # After the step (the closure computing the gradients runs inside it), before they are zeroed.
        trainer.optimizers[0].register_step_post_hook(lambda *_: self.stepped.append(self.norm(pl_module)))

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: Classifier, optimizer) -> None:
        self.computed.append(self.norm(pl_module))

    @staticmethod
    def norm(module: nn.Module) -> float:
        return float(torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in module.parameters()])))


def test_gradient_accumulation_and_clipping_reach_the_optimizer() -> None:
    norms = GradientNorms()
    model = Classifier(TrunkNet, {"dr": 5, "dme": 3}, optimizer=partial(torch.optim.SGD, lr=0.1))
    trainer = Trainer(
        max_epochs=1, accumulate_grad_batches=2, gradient_clip_val=0.01, logger=False, enable_checkpointing=False,
        callbacks=[norms], enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(model, datamodule=RandomImages(batch_size=2))  # 8 batches: 4 optimizer steps of 2 batches each
    assert trainer.global_step == 4 and len(norms.stepped) == 4
    assert len(norms.computed) == 4 and min(norms.computed) > 0.01
    assert norms.stepped == pytest.approx([0.01] * 4, rel=1e-4)  # clipping divides by (norm + 1e-6)


def test_class_weighted_loss_is_refused_where_the_data_cannot_count_its_classes() -> None:
    class Uncounted(TaskDataModule):
        tasks = {"digit": 10}

    model = Classifier(TutorialNet, {"digit": 10}, class_weighted_loss=True)
    model._trainer = SimpleNamespace(datamodule=Uncounted())
    with pytest.raises(ConfigError, match="--model.class_weighted_loss needs .* Uncounted does not count the classes"):
        model.setup("fit")


@pytest.mark.parametrize("loss", ["cross_entropy", "focal"])
def test_images_unlabelled_for_a_task_count_in_neither_its_loss_nor_its_metrics(loss: str) -> None:
    model = Classifier(TwoHeadNet, {"dr": 5, "dme": 3}, loss=loss, label_smoothing=0.1)
    model.class_weights["dme"] = torch.tensor([1.0, 2.0, 0.5])
    data = batch()
    masked = {**data, "dme": data["dme"].clone()}
    masked["dme"][[1, 4]] = -1
    kept = torch.tensor([True, False, True, True, False, True])
    labelled_only = {key: value[kept] if isinstance(value, torch.Tensor) else value for key, value in masked.items()}
    logits = model(data["image"])
    kept_logits = {head: value[kept] for head, value in logits.items()}
    with_masked = model._head_loss(logits["dme"], masked["dme"], "dme")
    torch.testing.assert_close(with_masked, model._head_loss(kept_logits["dme"], labelled_only["dme"], "dme"))
    nothing = torch.full((6,), -1)
    assert model._head_loss(logits["dme"], nothing, "dme").item() == 0.0  # not NaN: a batch without dme grades
    model.metrics["val"]["dme"].update(model.probabilities(logits)["dme"], masked["dme"])
    reference = model.metrics["test"]["dme"]
    reference.update(model.probabilities(kept_logits)["dme"], labelled_only["dme"])
    for name, value in model.metrics["val"]["dme"].compute().items():
        torch.testing.assert_close(value, reference.compute()[name.replace("val/", "test/")])


def test_regression_loss_leaves_unlabelled_images_out() -> None:
    model = Classifier(TwoHeadNet, {"dr": 5}, regression_tasks=["dr"])
    outputs = torch.tensor([[1.0], [3.0], [2.0]])
    assert model._head_loss(outputs, torch.tensor([2, -1, 2]), "dr").item() == pytest.approx(0.5)


def test_class_names_default_to_the_indices_and_must_fit_the_tasks() -> None:
    model = Classifier(TwoHeadNet, {"dr": 3, "tb": 2}, class_names={"tb": ["normal", "tuberculosis"]})
    assert model.class_names == {"dr": ["0", "1", "2"], "tb": ["normal", "tuberculosis"]}
    with pytest.raises(ConfigError, match="gives 3 names for task 'tb' of 2 classes"):
        Classifier(TwoHeadNet, {"tb": 2}, class_names={"tb": ["a", "b", "c"]})
    with pytest.raises(ConfigError, match="ordinal_tasks"):
        Classifier(TwoHeadNet, {"tb": 2}, ordinal_tasks=["dr"])


def test_a_batch_moves_its_tensors_and_keeps_its_names_as_they_are() -> None:
    model = Classifier(TwoHeadNet, {"dr": 5, "dme": 3})
    given = batch()
    moved = model.transfer_batch_to_device(given, torch.device("meta"), 0)
    assert moved.keys() == given.keys() and moved["id"] is given["id"]
    assert all(moved[key].is_meta for key in ("image", "dr", "dme"))
    # A batch of another shape takes Lightning's way, which reaches into nested collections.
    nested = model.transfer_batch_to_device({"image": given["image"], "extra": [given["dr"]]}, torch.device("meta"), 0)
    assert nested["image"].is_meta and nested["extra"][0].is_meta


class StepLosses(Callback):
    """The loss of each training step by epoch and by step index, and each epoch's logged mean (read when the next
    epoch starts)."""

    def __init__(self) -> None:
        self.losses: dict[int, list[float]] = {}
        self.by_step: dict[int, float] = {}  # the step index is the step TensorBoard shows a loss at
        self.logged: list[float] = []

    def on_train_epoch_start(self, trainer: Trainer, pl_module: Classifier) -> None:
        if trainer.current_epoch:
            self.logged.append(float(trainer.callback_metrics["train/loss_epoch"]))

    def on_train_batch_end(self, trainer: Trainer, pl_module: Classifier, outputs, batch, batch_idx: int) -> None:
        self.losses.setdefault(trainer.current_epoch, []).append(float(outputs["loss"]))
        self.by_step[trainer.global_step - 1] = float(outputs["loss"])

    def on_train_end(self, trainer: Trainer, pl_module: Classifier) -> None:
        self.logged.append(float(trainer.callback_metrics["train/loss_epoch"]))


def test_each_epoch_logs_the_mean_training_loss_of_its_own_steps(recwarn: pytest.WarningsRecorder) -> None:
    steps = StepLosses()
    model = Classifier(TrunkNet, {"dr": 5, "dme": 3}, optimizer=partial(torch.optim.SGD, lr=0.1))
    Trainer(
        max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, limit_val_batches=0, callbacks=[steps],
    ).fit(model, datamodule=RandomImages(batch_size=4))  # fmt: skip
    assert [len(losses) for losses in steps.losses.values()] == [4, 4]
    assert steps.logged == pytest.approx([sum(losses) / 4 for losses in steps.losses.values()])
    assert not [w for w in recwarn if "transfer_batch_to_device" in str(w.message)]  # the model's own, by design


class PoisonWeights(Callback):
    """Turns a weight NaN before training step ``step``, so that every loss from that step on is NaN."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: Trainer, pl_module: Classifier, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                pl_module.net.heads["dr"].weight[0, 0] = float("nan")


def test_the_step_loss_in_tensorboard_is_the_loss_of_the_step_it_is_shown_at(tmp_path) -> None:
    """Logged on the steps Lightning writes: a loss logged on another step would be shown steps later, stale."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    losses = StepLosses()
    model = Classifier(TrunkNet, {"dr": 5, "dme": 3}, optimizer=partial(torch.optim.SGD, lr=0.1))
    trainer = Trainer(
        max_epochs=2, logger=TensorBoardLogger(tmp_path), enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, log_every_n_steps=3,
        callbacks=[losses],
    )  # fmt: skip
    trainer.fit(model, datamodule=RandomImages(batch_size=1))  # 32 steps
    events = EventAccumulator(trainer.logger.log_dir)
    events.Reload()
    shown = {event.step: event.value for event in events.Scalars("train/loss_step")}
    assert sorted(shown) == list(range(2, 32, 3))  # after every third step
    for step, value in shown.items():
        assert value == pytest.approx(losses.by_step[step], rel=1e-6), step


def test_a_loss_turned_nan_stops_training_at_the_next_logging_step() -> None:
    """The promise: the loss is checked on the steps the logger writes, so training stops within that many steps."""
    model = Classifier(TrunkNet, {"dr": 5, "dme": 3}, optimizer=partial(torch.optim.SGD, lr=0.1))
    trainer = Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, limit_val_batches=0, log_every_n_steps=3, callbacks=[PoisonWeights(step=4)],
    )  # fmt: skip
    # Lightning writes after steps 2, 5, 8 (the third, sixth, ninth): the loss is checked on those
    with pytest.raises(TrainingError, match=r"the training loss of step 5 is NaN or infinite \(epoch 0, step 5\)"):
        trainer.fit(model, datamodule=RandomImages(batch_size=2))  # 8 steps
    assert trainer.global_step == 5  # stopped before the sixth optimizer step
