import pytest
import torch

from medcls.data import TaskDataModule
from medcls.errors import ConfigError


class Counted(TaskDataModule):
    """A data module of given class counts and nothing else."""

    tasks = {"grade": 4}

    def __init__(self, counts: list[int]) -> None:
        super().__init__(batch_size=2)
        self.counts = counts

    def class_counts(self, task: str) -> torch.Tensor:
        return torch.tensor(self.counts, dtype=torch.float)


def test_class_weights_are_the_inverse_frequencies_of_the_class_counts() -> None:
    weights = Counted([6, 3, 1, 0]).class_weights("grade")
    # N / (K n_c) with N = 10, K = 4; the absent class weighs N / K.
    torch.testing.assert_close(weights, torch.tensor([10 / 24, 10 / 12, 10 / 4, 10 / 4]))
    torch.testing.assert_close((weights * torch.tensor([6.0, 3, 1, 0])).sum(), torch.tensor(3 * 10 / 4))


def test_defaults_of_the_contract() -> None:
    data = Counted([1, 1, 1, 1])
    assert data.binary_views == {} and data.group_of("train/007") == "train/007"
    assert data.class_names == {"grade": ["0", "1", "2", "3"]} and data.ordinal_tasks == []
    images = torch.tensor([[[[-2.0, 0.0], [2.0, 6.0]]]])
    torch.testing.assert_close(data.denormalise(images), torch.tensor([[[[0.0, 0.25], [0.5, 1.0]]]]))
    with pytest.raises(NotImplementedError, match="TaskDataModule does not count the classes"):
        TaskDataModule().class_counts("grade")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"batch_size": 0}, r"--data\.batch_size is 0; it must be at least 1\."),
        ({"eval_batch_size": 0}, r"--data\.eval_batch_size is 0; it must be at least 1\."),
        ({"num_workers": -1}, r"--data\.num_workers is -1; use 0 \(load in the main process\) or more\."),
    ],
)
def test_loader_settings_are_checked(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TaskDataModule(**settings)
    assert TaskDataModule(batch_size=8).eval_batch_size == 8  # validation batches default to training's size


@pytest.mark.parametrize(("images", "batches"), [(5, 2), (4, 2), (1, 1)])
def test_a_last_training_batch_of_one_image_is_left_out(images: int, batches: int) -> None:
    data = Counted([1, 1, 1, 1])
    data.train_set = torch.utils.data.TensorDataset(torch.zeros(images, 1))
    assert len(data.train_dataloader()) == batches  # 5 images in batches of 2: 2 + 2, the fifth left out
    data.val_set = data.train_set
    assert len(data.val_dataloader()) == -(-images // 2)  # evaluation sees every image
