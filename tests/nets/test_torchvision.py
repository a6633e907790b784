import logging
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor, nn
from torchvision import models

from medcls.errors import CheckpointError, ConfigError
from medcls.nets.torchvision import TorchvisionNet

FEATURES = {"alexnet": 4096, "vgg16": 4096, "googlenet": 1024, "inception_v3": 2048, "resnet18": 512, "resnet50": 2048}
# Near the smallest inputs each architecture takes: Inception-v3 needs 75 px, AlexNet 63.
SIZE = {"inception_v3": 80}


def first_conv(net: TorchvisionNet) -> nn.Conv2d:
    return next(module for module in net.trunk.modules() if isinstance(module, nn.Conv2d))


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "medcls.nets.weights"]


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Tensor]]:
    torch.manual_seed(0)
    state = models.resnet18(weights=None).state_dict()
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(state, path)
    return path, state


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Tensor]]:
    torch.manual_seed(0)
    # The convolutions only: the 58M weights of the classifier would make a 240 MB file.
    state = {key: value for key, value in models.alexnet(weights=None).state_dict().items() if key.startswith("f")}
    path = tmp_path_factory.mktemp("weights") / "alexnet.pth"
    torch.save(state, path)
    return path, state


def check_heads_on_pooled_features(net: TorchvisionNet, name: str, tasks: dict[str, int], in_chans: int) -> None:
    size = SIZE.get(name, 64)
    x = torch.randn(2, in_chans, size, size)
    # Training mode: GoogLeNet and Inception-v3 would add auxiliary outputs here if they had kept them.
    with torch.no_grad():
        out = net(x)
    assert net.feature_dim == FEATURES[name]
    assert {task: tuple(logits.shape) for task, logits in out.items()} == {t: (2, n) for t, n in tasks.items()}
    assert first_conv(net).in_channels == in_chans
    assert not any(isinstance(module, nn.Linear) and module.out_features == 1000 for module in net.trunk.modules())
    trunk, heads = {id(p) for p in net.trunk.parameters()}, {id(p) for p in net.heads.parameters()}
    assert trunk.isdisjoint(heads)
    assert trunk | heads == {id(p) for p in net.parameters()}


@pytest.mark.parametrize("name", FEATURES)
def test_grey_input_and_one_head_per_task(name: str) -> None:
    tasks = {"dr": 5, "dme": 3}
    check_heads_on_pooled_features(TorchvisionNet(tasks, name=name, in_chans=1, dropout=0.2), name, tasks, 1)


@pytest.mark.parametrize("name", FEATURES)
def test_rgb_input_and_a_single_head_on_the_meta_device(name: str) -> None:
    # Shapes without allocating or initialising the weights (VGG16 alone takes seconds); the grey test computes.
    tasks = {"referable": 2}
    with torch.device("meta"):
        net = TorchvisionNet(tasks, name=name)
        check_heads_on_pooled_features(net, name, tasks, 3)
        assert net.trunk(torch.empty(2, 3, SIZE.get(name, 64), SIZE.get(name, 64))).shape == (2, FEATURES[name])


@pytest.mark.parametrize("wrapped", [False, True])
def test_weights_from_a_local_file_fill_the_trunk(
    resnet18_file: tuple[Path, dict[str, Tensor]], tmp_path: Path, wrapped: bool, caplog: pytest.LogCaptureFixture
) -> None:
    path, state = resnet18_file
    if wrapped:
        path = tmp_path / "checkpoint.pt"
        torch.save({"state_dict": state, "epoch": 3}, path)
    with caplog.at_level(logging.WARNING, logger="medcls.nets.torchvision"):
        net = TorchvisionNet({"dr": 5}, weights=str(path))
    loaded = net.trunk.state_dict()
    assert loaded.keys() == {key for key in state if not key.startswith("fc.")}
    assert all(torch.equal(loaded[key], state[key]) for key in loaded)
    assert not warnings_of(caplog)


def test_grey_input_starts_from_the_rgb_kernels_summed(resnet18_file: tuple[Path, dict[str, Tensor]]) -> None:
    path, state = resnet18_file
    grey = TorchvisionNet({"dr": 5}, in_chans=1, weights=path).eval()
    rgb = TorchvisionNet({"dr": 5}, weights=path).eval()
    assert torch.equal(grey.trunk.conv1.weight, state["conv1.weight"].sum(dim=1, keepdim=True))
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(grey.trunk(x), rgb.trunk(x.expand(-1, 3, -1, -1)))


def test_other_channel_counts_share_the_summed_kernel_and_keep_the_bias(
    alexnet_file: tuple[Path, dict[str, Tensor]],
) -> None:
    path, state = alexnet_file
    conv = first_conv(TorchvisionNet({"dr": 5}, name="alexnet", in_chans=2, weights=path))
    summed = state["features.0.weight"].sum(dim=1, keepdim=True)
    torch.testing.assert_close(conv.weight, torch.cat([summed, summed], dim=1) / 2)
    assert torch.equal(conv.bias, state["features.0.bias"])


def test_a_file_of_another_architecture_fails_naming_the_file(
    alexnet_file: tuple[Path, dict[str, Tensor]], tmp_path: Path
) -> None:
    alexnet, _ = alexnet_file
    with pytest.raises(CheckpointError, match=re.escape(f"{alexnet} does not fit torchvision resnet18: none of its")):
        TorchvisionNet({"dr": 5}, weights=alexnet)
    path = tmp_path / "resnet50.pth"
    # Up to the first block, where the bottleneck's 1x1 convolution meets the basic block's 3x3.
    state = models.resnet50(weights=None).state_dict()
    torch.save({key: state[key] for key in state if key.startswith(("conv1.", "bn1.", "layer1."))}, path)
    message = f"{path} does not fit torchvision resnet18: layer1.0.conv1.weight is (64, 64, 1, 1) in the file but "
    with pytest.raises(CheckpointError, match=re.escape(message + "(64, 64, 3, 3) in torchvision resnet18")) as caught:
        TorchvisionNet({"dr": 5}, weights=path)
    assert str(caught.value).endswith("Give --model.net.weights weights of torchvision resnet18.")


def test_a_missing_file_or_one_without_a_state_dict_fails(tmp_path: Path) -> None:
    with pytest.raises(
        CheckpointError, match=re.escape(f"{tmp_path / 'nowhere.pth'} not found; give --model.net.weights")
    ):
        TorchvisionNet({"dr": 5}, weights=tmp_path / "nowhere.pth")
    torch.save(torch.zeros(3), path := tmp_path / "tensor.pth")
    with pytest.raises(
        CheckpointError, match=re.escape(f"{path} holds a Tensor, not a state dict; give --model.net.weights")
    ):
        TorchvisionNet({"dr": 5}, weights=path)


def test_a_truncated_file_fails_naming_it(resnet18_file: tuple[Path, dict[str, Tensor]], tmp_path: Path) -> None:
    whole, _ = resnet18_file
    (path := tmp_path / "cut.pth").write_bytes(whole.read_bytes()[:1000])
    reason = "RuntimeError: PytorchStreamReader failed reading zip archive: failed finding central directory"
    with pytest.raises(
        CheckpointError, match=re.escape(f"Cannot read weights file {path} (--model.net.weights): {reason}")
    ):
        TorchvisionNet({"dr": 5}, weights=path)


def test_safetensors_and_ddp_prefixes_load_too(resnet18_file: tuple[Path, dict[str, Tensor]], tmp_path: Path) -> None:
    _, state = resnet18_file
    save_file({f"module.{key}": value for key, value in state.items()}, path := tmp_path / "ddp.safetensors")
    net = TorchvisionNet({"dr": 5}, weights=path)
    assert all(torch.equal(value, state[key]) for key, value in net.trunk.state_dict().items())


@pytest.mark.parametrize(
    ("setting", "message"),
    [({"name": "resnet34"}, "--model.net.name must be one of alexnet, vgg16, googlenet, inception_v3, resnet18, "
      "resnet50; got 'resnet34'"),
     ({"in_chans": 0}, "--model.net.in_chans must be at least 1; got 0"),
     ({"dropout": -0.1}, "--model.net.dropout must be a probability between 0 and 1 (e.g. 0.2); got -0.1")],
)  # fmt: skip
def test_impossible_settings_name_their_option(setting: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        TorchvisionNet({"dr": 5}, **setting)


def test_missing_and_unexpected_keys_are_reported(
    resnet18_file: tuple[Path, dict[str, Tensor]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, state = resnet18_file
    partial = {key: value for key, value in state.items() if not key.startswith("layer4.")}
    torch.save({**partial, "extra.weight": torch.zeros(1)}, path := tmp_path / "partial.pth")
    with caplog.at_level(logging.WARNING, logger="medcls.nets.torchvision"):
        net = TorchvisionNet({"dr": 5}, weights=path)
    missing, unexpected = (record.getMessage() for record in warnings_of(caplog))
    assert "layer4.0.conv1.weight" in missing and "fc." not in missing
    assert unexpected.endswith("1 unexpected keys, not loaded into torchvision resnet18: extra.weight")
    assert torch.equal(net.trunk.conv1.weight, state["conv1.weight"])


def test_the_classifier_and_auxiliary_heads_of_the_file_are_left_out_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = models.googlenet(weights=None, num_classes=10, aux_logits=True, init_weights=True).state_dict()
    torch.save(state, path := tmp_path / "googlenet.pth")
    with caplog.at_level(logging.WARNING, logger="medcls.nets.torchvision"):
        net = TorchvisionNet({"dr": 5}, name="googlenet", weights=path)
    assert not warnings_of(caplog)
    assert torch.equal(net.trunk.conv1.conv.weight, state["conv1.conv.weight"])
