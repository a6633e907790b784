import pytest
import torch

from medcls.nets import TimmNet


@pytest.mark.parametrize("name", ["test_resnet", "mobilenetv3_small_050"])
@pytest.mark.parametrize("tasks", [{"dr": 5, "dme": 3}, {"referable": 2}])
@pytest.mark.parametrize("in_chans", [1, 3])
def test_one_head_per_task_for_grey_and_rgb(name: str, tasks: dict[str, int], in_chans: int) -> None:
    net = TimmNet(tasks, name=name, in_chans=in_chans).eval()
    out = net(torch.randn(2, in_chans, 64, 64))
    assert {task: tuple(logits.shape) for task, logits in out.items()} == {t: (2, n) for t, n in tasks.items()}
