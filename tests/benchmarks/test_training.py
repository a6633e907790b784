import pytest
import torch

from medcls.benchmarks.training import RandomFundusBatches, TrainingCase, medcls_training, plain_training


def test_the_random_batches_cycle_through_a_few_distinct_ones() -> None:
    data = RandomFundusBatches(size=16, batch_size=3, steps=5, count=2)
    batches = list(data.train_dataloader())
    assert len(batches) == 5 and batches[0]["image"].shape == (3, 3, 16, 16)
    assert batches[2]["image"].equal(batches[0]["image"]) and not batches[1]["image"].equal(batches[0]["image"])
    assert data.class_counts("dr").sum() == 3 * 5 and len(data.class_counts("dme")) == 3  # what an epoch serves


def test_cached_batches_are_augmented_on_the_device_into_the_nets_input() -> None:
    data = RandomFundusBatches(size=16, batch_size=3, steps=2, cache_size=24)
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].shape == (3, 24, 24, 3) and batch["image"].dtype == torch.uint8  # as a cache serves them
    image = data.on_after_batch_transfer(batch, 0)["image"]
    assert image.shape == (3, 3, 16, 16) and image.dtype == torch.float32 and image.min() < 0  # normalised


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_both_loops_time_the_steps_after_the_warm_up(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    case = TrainingCase("timm", "test_resnet", "32-true", channels_last=True)
    data = RandomFundusBatches(size=32, batch_size=2, steps=4, cache_size=40)
    plain = plain_training(data, case, warmup=1)
    framework = medcls_training(32, 2, case, steps=4, warmup=1, cache_size=40)
    # The step timer fired (it measures nothing unless the fit reaches max_steps), and without a GPU no memory.
    assert plain.images_per_second > 0 and framework is not None and framework.images_per_second > 0
    assert plain.peak_memory_gib == framework.peak_memory_gib == 0.0
    assert list(tmp_path.iterdir()) == []  # the fit's run folder was temporary


def test_canet_is_trained_by_both_loops_on_its_backbone() -> None:
    case = TrainingCase("canet", "test_resnet", "32-true", channels_last=False)
    assert plain_training(RandomFundusBatches(size=32, batch_size=2, steps=2), case, warmup=1).images_per_second > 0
    options = case.net_options()
    assert options[options.index("--model.init_args.net") + 1] == "medcls.nets.CANet"
    assert options[options.index("--model.init_args.net.init_args.backbone") + 1] == "test_resnet"
