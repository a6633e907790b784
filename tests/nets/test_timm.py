from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from medcls.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from medcls.nets import TimmNet
from medcls.nets.timm import load_trunk_weights


@pytest.mark.parametrize("name", ["test_resnet", "mobilenetv3_small_050"])
@pytest.mark.parametrize("tasks", [{"dr": 5, "dme": 3}, {"referable": 2}])
@pytest.mark.parametrize("in_chans", [1, 3])
def test_one_head_per_task_for_grey_and_rgb(name: str, tasks: dict[str, int], in_chans: int) -> None:
    net = TimmNet(tasks, name=name, in_chans=in_chans).eval()
    out = net(torch.randn(2, in_chans, 64, 64))
    assert {task: tuple(logits.shape) for task, logits in out.items()} == {t: (2, n) for t, n in tasks.items()}


def save_weights(path: Path, name: str, *, num_classes: int = 0, nest: str | None = None) -> dict[str, torch.Tensor]:
    """Random weights of a timm model, saved to ``path`` (``.safetensors`` or a torch pickle); returns them."""
    state = timm.create_model(name, num_classes=num_classes).state_dict()
    if path.suffix == ".safetensors":
        save_file(state, path)
    else:
        torch.save({nest: state} if nest else state, path)
    return state


def assert_loaded(net: TimmNet, state: dict[str, torch.Tensor]) -> None:
    own = net.trunk.state_dict()
    assert own.keys() <= state.keys()
    for key, value in own.items():
        assert torch.equal(value, state[key]), key


@pytest.mark.parametrize("file", ["w.pth", "w.pt", "w.bin", "w.safetensors"])
def test_pretrained_file_loads_the_trunk(tmp_path: Path, file: str, caplog: pytest.LogCaptureFixture) -> None:
    state = save_weights(tmp_path / file, "test_resnet")
    with caplog.at_level(logging.WARNING):
        net = TimmNet({"dr": 5}, "test_resnet", pretrained=str(tmp_path / file))
    assert_loaded(net, state)
    assert not caplog.records


@pytest.mark.parametrize("nest", [None, "state_dict", "model"])
def test_classifier_of_a_full_model_is_dropped_silently(
    tmp_path: Path, nest: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    state = save_weights(tmp_path / "full.pth", "test_resnet", num_classes=7, nest=nest)
    assert "fc.weight" in state
    with caplog.at_level(logging.WARNING):
        net = TimmNet({"dr": 5}, "test_resnet", pretrained=str(tmp_path / "full.pth"))
    assert_loaded(net, state)
    assert not caplog.records


def test_grey_trunk_gets_the_rgb_first_conv_summed(tmp_path: Path) -> None:
    state = save_weights(tmp_path / "rgb.pth", "test_resnet")
    net = TimmNet({"dr": 5}, "test_resnet", in_chans=1, pretrained=str(tmp_path / "rgb.pth"))
    first = net.trunk.pretrained_cfg["first_conv"] + ".weight"
    assert torch.allclose(net.trunk.state_dict()[first], state[first].sum(dim=1, keepdim=True))
    assert net.eval()(torch.randn(1, 1, 64, 64))["dr"].shape == (1, 5)


def test_load_trunk_weights_into_an_unpooled_trunk(tmp_path: Path) -> None:
    state = save_weights(tmp_path / "w.pth", "test_resnet", num_classes=3)
    trunk = timm.create_model("test_resnet", num_classes=0, global_pool="")
    load_trunk_weights(trunk, tmp_path / "w.pth")
    assert all(torch.equal(value, state[key]) for key, value in trunk.state_dict().items())


@pytest.mark.parametrize(
    ("source", "target", "match"),
    [
        ("test_vit", "test_resnet", "none of its .* keys"),
        ("test_resnet", "resnet10t", r"conv1\.0\.weight is \(\d+, 3, 3, 3\) in the file but \(\d+, 3, 3, 3\)"),
    ],
)
def test_weights_of_another_architecture_are_refused(tmp_path: Path, source: str, target: str, match: str) -> None:
    path = tmp_path / f"{source}.pth"
    save_weights(path, source)
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}.*{match}"):
        TimmNet({"dr": 5}, target, pretrained=str(path))


def test_partial_weights_log_the_missing_keys(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = timm.create_model("test_resnet", num_classes=0).state_dict()
    torch.save({key: value for key, value in state.items() if key.startswith("conv1.")}, tmp_path / "stem.pth")
    with caplog.at_level(logging.WARNING):
        TimmNet({"dr": 5}, "test_resnet", pretrained=str(tmp_path / "stem.pth"))
    assert "keys missing" in caplog.text and "layer1.0.conv1.weight" in caplog.text


def test_unexpected_keys_are_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = save_weights(tmp_path / "w.pth", "test_resnet")
    torch.save({**state, "extra.weight": torch.zeros(2)}, tmp_path / "w.pth")
    with caplog.at_level(logging.WARNING):
        TimmNet({"dr": 5}, "test_resnet", pretrained=str(tmp_path / "w.pth"))
    assert "unexpected keys" in caplog.text and "extra.weight" in caplog.text


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        TimmNet({"dr": 5}, "test_resnet", pretrained=str(tmp_path / "nowhere.pth"))


@pytest.mark.parametrize("file", ["junk.pth", "junk.safetensors"])
def test_unreadable_file(tmp_path: Path, file: str) -> None:
    (tmp_path / file).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=f"Cannot read weights file .*{file}"):
        TimmNet({"dr": 5}, "test_resnet", pretrained=str(tmp_path / file))


def test_data_config_gives_the_weights_normalisation() -> None:
    config = TimmNet({"dr": 5}, "resnet10t").data_config
    assert config["mean"] == IMAGENET_MEAN and config["std"] == IMAGENET_STD
    assert config["input_size"][0] == 3


def test_pretrained_true_asks_timm_for_its_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    create_model = timm.create_model

    def offline(name: str, **kwargs):
        calls.append(kwargs["pretrained"])
        return create_model(name, **{**kwargs, "pretrained": False})

    monkeypatch.setattr(timm, "create_model", offline)
    TimmNet({"dr": 5}, "test_resnet", pretrained=True)
    TimmNet({"dr": 5}, "test_resnet")
    assert calls == [True, False]
