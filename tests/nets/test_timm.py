from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import timm
import torch
from huggingface_hub.errors import LocalEntryNotFoundError
from safetensors.torch import save_file

from medcls.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from medcls.errors import CheckpointError, ConfigError
from medcls.nets import CANet, JointBaseline, TimmNet
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
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(path))}.*{match}.*Give --model.net.pretrained weights"):
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
    with pytest.raises(CheckpointError, match="nowhere.pth not found; give --model.net.pretrained the path"):
        TimmNet({"dr": 5}, "test_resnet", pretrained=str(tmp_path / "nowhere.pth"))


def test_a_path_object_loads_the_file_too(tmp_path: Path) -> None:
    state = save_weights(tmp_path / "w.pth", "test_resnet")
    assert_loaded(TimmNet({"dr": 5}, "test_resnet", pretrained=tmp_path / "w.pth"), state)


def truncated(path: Path) -> None:
    """Cut a file to half its length, as an interrupted download or copy leaves it."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    ("file", "spoil", "reason"),
    [
        ("junk.pth", lambda path: path.write_bytes(b"not a checkpoint"), "UnpicklingError: Unsupported operand"),
        ("junk.safetensors", lambda path: path.write_bytes(b"not a checkpoint"), "SafetensorError"),
        ("empty.pth", lambda path: path.write_bytes(b""), "EOFError: the file ends early"),
        ("cut.pth", truncated, "RuntimeError: PytorchStreamReader failed reading zip archive"),
        ("cut.safetensors", truncated, "SafetensorError: Error while deserializing header"),
        (
            "model.pth",
            lambda path: torch.save(timm.create_model("test_resnet"), path),
            "UnpicklingError: Unsupported global: GLOBAL timm.models.resnet.ResNet was not an allowed global",
        ),
    ],
)
def test_unreadable_file(tmp_path: Path, file: str, spoil, reason: str) -> None:
    path = tmp_path / file
    save_weights(path, "test_resnet")
    spoil(path)
    with pytest.raises(CheckpointError, match=f"Cannot read weights file .*{file}") as caught:
        TimmNet({"dr": 5}, "test_resnet", pretrained=str(path))
    message = str(caught.value)
    assert f"{path} (--model.net.pretrained): {reason}" in message
    assert "\n" not in message and "torch.save(model.state_dict(), path)" in message


@pytest.mark.parametrize(
    ("contents", "held"),
    [(torch.zeros(3), "a Tensor, not a state dict"), ({}, "an empty dict, not a state dict"),
     ({"conv1.weight": torch.zeros(1), "epoch": 3}, "'epoch' of type int, not a tensor")],
)  # fmt: skip
def test_a_file_without_a_state_dict_of_tensors_is_refused(tmp_path: Path, contents: object, held: str) -> None:
    torch.save(contents, path := tmp_path / "w.pth")
    with pytest.raises(
        CheckpointError, match=re.escape(f"Weights file {path} holds {held}; give --model.net.pretrained")
    ):
        TimmNet({"dr": 5}, "test_resnet", pretrained=str(path))


@pytest.mark.parametrize(
    ("net", "option"),
    [(lambda name: TimmNet({"dr": 5}, name), "--model.net.name"),
     (lambda name: CANet({"dr": 5, "dme": 3}, name), "--model.net.backbone"),
     (lambda name: JointBaseline({"dr": 5}, name), "--model.net.backbone")],
)  # fmt: skip
def test_an_unknown_model_name_suggests_the_closest(net, option: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"{option} 'resnt50' is not a timm model; did you mean resnet50,")):
        net("resnt50")
    with pytest.raises(ConfigError, match=r"no timm model has a similar name\. List timm's models with timm\.list_"):
        net("qqqqqqqq")
    with pytest.raises(ConfigError, match=re.escape(f"{option} 'test_resnet.r16_in1k': timm has no pretrained tag")):
        net("test_resnet.r16_in1k")


def test_pretrained_true_for_a_model_without_weights_is_refused() -> None:
    message = "--model.net.pretrained true: timm has no pretrained weights for botnet50ts_256; set"
    with pytest.raises(ConfigError, match=message):
        TimmNet({"dr": 5}, "botnet50ts_256", pretrained=True)


def test_a_download_that_fails_offline_says_how_to_give_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(name: str, **kwargs):
        raise LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub. Please check.")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(CheckpointError, match=re.escape("model.safetensors of timm/test_resnet.r160_in1k")) as caught:
        TimmNet({"dr": 5}, "test_resnet", pretrained=True)
    assert "could not download the weights of test_resnet (LocalEntryNotFoundError: An error happened" in str(
        caught.value
    )
    assert str(caught.value).endswith("give --model.net.pretrained the file's path.")


@pytest.mark.parametrize(
    ("setting", "message"),
    [({"in_chans": 0}, "--model.net.in_chans must be at least 1; got 0"),
     ({"drop_rate": 1.5}, "--model.net.drop_rate must be a probability between 0 and 1 (e.g. 0.2); got 1.5")],
)  # fmt: skip
def test_impossible_settings_name_their_option(setting: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        TimmNet({"dr": 5}, "test_resnet", **setting)


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
