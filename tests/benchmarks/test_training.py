import pytest

from medcls.benchmarks.training import RandomFundusBatches, medcls_training, plain_training


def test_the_random_batches_cycle_through_a_few_distinct_ones() -> None:
    data = RandomFundusBatches(size=16, batch_size=3, steps=5, count=2)
    batches = list(data.train_dataloader())
    assert len(batches) == 5 and batches[0]["image"].shape == (3, 3, 16, 16)
    assert batches[2]["image"].equal(batches[0]["image"]) and not batches[1]["image"].equal(batches[0]["image"])
    assert data.class_counts("dr").sum() == 3 * 5 and len(data.class_counts("dme")) == 3  # what an epoch serves


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_both_loops_time_the_steps_after_the_warm_up(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = RandomFundusBatches(size=32, batch_size=2, steps=4)
    plain = plain_training(data, "test_resnet", warmup=1, precision="32-true", channels_last=False)
    framework = medcls_training(32, 2, "test_resnet", steps=4, warmup=1, precision="32-true", channels_last=False)
    # The step timer fired (it measures nothing unless the fit reaches max_steps), and without a GPU no memory.
    assert plain.images_per_second > 0 and framework is not None and framework.images_per_second > 0
    assert plain.peak_memory_gib == framework.peak_memory_gib == 0.0
    assert list(tmp_path.iterdir()) == []  # the fit's run folder was temporary
