import copy
from pathlib import Path

import pytest
import torch

from medcls.errors import CheckpointError
from medcls.nets import CANet, JointBaseline, TimmNet, TorchvisionNet, TutorialNet, without_weights_files
from medcls.nets.weights import read_weights


def stored(net: type, **init_args: object) -> dict[str, object]:
    """A net's config as LightningCLI stores it in ``checkpoint["hyper_parameters"]["net"]``."""
    return {"class_path": f"medcls.nets.{net.__name__}", "init_args": init_args}


@pytest.mark.parametrize(
    ("config", "loading_nothing"),
    [(stored(TimmNet, name="test_resnet", in_chans=1, pretrained="/gone/trunk.pth"), {"pretrained": False}),
     (stored(CANet, backbone="resnet50", pretrained=True, dropout=0.3), {"pretrained": False}),
     (stored(JointBaseline, backbone="resnet50", pretrained="/gone/trunk.pth"), {"pretrained": False}),
     (stored(TorchvisionNet, name="alexnet", weights="/gone/alexnet.pth", dropout=0.0), {"weights": None}),
     (stored(TutorialNet, dropout=0.5), {})],
)  # fmt: skip
def test_the_options_that_load_files_are_set_to_load_nothing(
    config: dict[str, object], loading_nothing: dict[str, object]
) -> None:
    original = copy.deepcopy(config)
    without = without_weights_files(config)
    assert without == {"class_path": config["class_path"], "init_args": config["init_args"] | loading_nothing}
    assert config == original  # a copy: the checkpoint's own record is left as it was


def test_a_config_without_init_args_gets_them() -> None:
    without = without_weights_files({"class_path": "medcls.nets.timm.TimmNet"})
    assert without == {"class_path": "medcls.nets.timm.TimmNet", "init_args": {"pretrained": False}}


def test_the_net_builds_without_its_moved_weights_file(tmp_path: Path) -> None:
    config = stored(TimmNet, name="test_resnet", pretrained=str(tmp_path / "moved.pth"))
    with pytest.raises(CheckpointError, match="moved.pth not found"):
        TimmNet({"dr": 5}, **config["init_args"])
    net = TimmNet({"dr": 5}, **without_weights_files(config)["init_args"])
    assert net(torch.zeros(2, 3, 32, 32))["dr"].shape == (2, 5)


@pytest.mark.parametrize("class_path", ["medcls.nets.NoSuchNet", "nowhere.Net", "TimmNet", None])
def test_a_class_that_cannot_be_imported_is_a_checkpoint_error(class_path: str | None) -> None:
    with pytest.raises(CheckpointError, match=rf"The checkpoint's net {class_path!r} cannot be imported \("):
        without_weights_files({"class_path": class_path} if class_path else {"init_args": {}})


def test_ema_weights_are_preferred_to_the_raw_ones(tmp_path: Path) -> None:
    raw, ema = {"w": torch.zeros(1)}, {"w": torch.ones(1)}
    torch.save({"state_dict": raw, "state_dict_ema": ema, "epoch": 3}, path := tmp_path / "train.pth")
    assert read_weights(path, "--model.net.pretrained") == ema
