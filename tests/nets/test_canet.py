import re

import pytest
import torch
from torch import nn

from medcls.errors import ConfigError
from medcls.nets.canet import CANet, ChannelGate, JointBaseline

# A tiny trunk (96 channels, 2x2 map at 64 px) and small features keep every test fast.
TINY = {"backbone": "test_resnet", "feature_dim": 64}
C, D, R = 96, 64, 16
IDRID = {"dr": 5, "dme": 3}
MESSIDOR = {"dr": 2, "dme": 3}


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def gate(channels: int) -> int:
    """Shared MLP channels -> channels/r -> channels, with biases."""
    return linear(channels, channels // R) + linear(channels // R, channels)


SPATIAL = 2 * 7 * 7 + 2  # 7x7 conv over (max, mean), no bias; BatchNorm2d(1) weight and bias


@pytest.mark.parametrize("tasks", [IDRID, MESSIDOR, {"referable": 2, "edema": 3}])
@pytest.mark.parametrize("in_chans", [1, 3])
def test_final_and_auxiliary_heads_per_task(tasks: dict[str, int], in_chans: int) -> None:
    net = CANet(tasks, in_chans=in_chans, **TINY).eval()
    out = net(torch.randn(2, in_chans, 64, 64))
    expected = {t: (2, n) for t, n in tasks.items()} | {f"{t}_aux": (2, n) for t, n in tasks.items()}
    assert {head: tuple(logits.shape) for head, logits in out.items()} == expected


@pytest.mark.parametrize("tasks", [IDRID, MESSIDOR])
def test_block_sizes_follow_the_specification(tasks: dict[str, int]) -> None:
    net = CANet(tasks, **TINY)
    assert net.trunk.num_features == C
    for task, n in tasks.items():
        block = net.specific[task]
        assert count(block.channel) == 2 * C * (C // R) + C // R + C == gate(C)
        assert count(block.spatial) == SPATIAL
        assert count(block.project) == C * D + D
        assert count(net.aux_heads[task]) == D * n + n
        assert count(net.cross[task]) == 2 * D * (D // R) + D // R + D == gate(D)
        assert count(net.heads[task]) == D * n + n
    outside_trunk = sum(2 * linear(D, n) for n in tasks.values()) + 2 * (gate(C) + SPATIAL + linear(C, D) + gate(D))
    assert count(net) - count(net.trunk) == outside_trunk


def test_resnet50_canet_has_29_0_million_parameters() -> None:
    net = CANet(MESSIDOR)
    c, d = 2048, 1024
    per_disease = (2 * c * c // 16 + c // 16 + c) + SPATIAL + (c * d + d) + (2 * d * d // 16 + d // 16 + d)
    heads = 2 * sum(d * n + n for n in MESSIDOR.values())
    assert count(net) - count(net.trunk) == 2 * per_disease + heads
    assert count(net) == 29_032_082


@pytest.mark.parametrize(
    ("cross_attention", "receivers"),
    [("both", {"dr", "dme"}), ("none", set()), ("dr_to_dme", {"dme"}), ("dme_to_dr", {"dr"})],
)
def test_ablations_remove_exactly_the_dropped_cross_attention(cross_attention: str, receivers: set[str]) -> None:
    full = CANet(IDRID, **TINY)
    ablated = CANet(IDRID, cross_attention=cross_attention, **TINY)
    assert set(ablated.cross) == receivers
    dropped = {name for name, _ in full.named_modules()} - {name for name, _ in ablated.named_modules()}
    assert {name.split(".")[1] for name in dropped} == {"dr", "dme"} - receivers
    assert all(name.startswith("cross.") for name in dropped)
    assert count(full) - count(ablated) == (2 - len(receivers)) * gate(D)


def test_unknown_cross_attention_is_refused() -> None:
    message = "--model.net.cross_attention must be one of both, none, dr_to_dme, dme_to_dr; got 'dr_to_dr'."
    with pytest.raises(ConfigError, match=re.escape(message)):
        CANet(IDRID, cross_attention="dr_to_dr", **TINY)  # type: ignore[arg-type]


def gradients(net: CANet, head: str) -> dict[str, bool]:
    """Which disease-specific blocks get gradient from a loss on one head."""
    net.zero_grad()
    net(torch.randn(2, 3, 64, 64))[head].sum().backward()
    return {task: net.specific[task].project.weight.grad is not None for task in net.specific}


@pytest.mark.parametrize(
    ("cross_attention", "dr_into_dme", "dme_into_dr"),
    [("both", True, True), ("none", False, False), ("dr_to_dme", True, False), ("dme_to_dr", False, True)],
)
def test_final_heads_see_the_other_disease_only_through_cross_attention(
    cross_attention: str, dr_into_dme: bool, dme_into_dr: bool
) -> None:
    torch.manual_seed(0)
    net = CANet(IDRID, cross_attention=cross_attention, **TINY)
    assert gradients(net, "dme") == {"dme": True, "dr": dr_into_dme}
    assert gradients(net, "dr") == {"dr": True, "dme": dme_into_dr}


def test_auxiliary_heads_train_their_own_branch_only() -> None:
    net = CANet(IDRID, **TINY)
    for task, other in (("dr", "dme"), ("dme", "dr")):
        assert gradients(net, f"{task}_aux") == {task: True, other: False}
        assert net.aux_heads[task].weight.grad is not None
        assert net.heads[task].weight.grad is None


def test_cross_attention_adds_the_gated_features_of_the_other_disease() -> None:
    net = CANet(MESSIDOR, **TINY).eval()
    x = torch.randn(2, 3, 64, 64)
    features = net.trunk.forward_features(x)
    f_dr, f_dme = net.specific["dr"](features), net.specific["dme"](features)
    mlp = net.cross["dme"].mlp
    dme_final = f_dme + f_dr * torch.sigmoid(2 * mlp(f_dr))  # avg and max pool coincide on a 1x1 map
    torch.testing.assert_close(net(x)["dme"], net.heads["dme"](dme_final))


@pytest.mark.parametrize("tasks", [{"dr": 5}, {"dr": 5, "dme": 3, "glaucoma": 2}])
def test_canet_needs_exactly_two_tasks(tasks: dict[str, int]) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"two diseases, DR then DME, but the data has tasks {tasks}; for")):
        CANet(tasks, **TINY)


@pytest.mark.parametrize(
    ("setting", "message"),
    [({"reduction": 0}, f"--model.net.reduction must be between 1 and {D}, the fewer of the test_resnet trunk's {C} "
      f"channels and --model.net.feature_dim {D}; got 0."),
     ({"reduction": D + 1}, f"--model.net.reduction must be between 1 and {D}"),
     ({"feature_dim": 0}, "--model.net.feature_dim must be at least 1; got 0."),
     ({"dropout": 2}, "--model.net.dropout must be a probability between 0 and 1 (e.g. 0.2); got 2."),
     ({"in_chans": 0}, "--model.net.in_chans must be at least 1; got 0.")],
)  # fmt: skip
def test_impossible_settings_name_their_option(setting: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        CANet(IDRID, **(TINY | setting))


@pytest.mark.parametrize("net", [CANet, JointBaseline])
def test_a_backbone_without_a_feature_map_is_refused(net: type[nn.Module]) -> None:
    message = "--model.net.backbone 'test_vit' gives features of shape (1, 101, 64), not a map of its 64 channels"
    with pytest.raises(ConfigError, match=re.escape(message)):
        net(IDRID, backbone="test_vit")


def test_channel_gate_refuses_a_reduction_above_its_channels() -> None:
    with pytest.raises(ValueError, match="reduction"):
        ChannelGate(8, reduction=16)


@pytest.mark.parametrize("tasks", [{"referable": 2}, IDRID, {"dr": 5, "dme": 3, "glaucoma": 2}])
@pytest.mark.parametrize("in_chans", [1, 3])
def test_joint_baseline_heads_and_size(tasks: dict[str, int], in_chans: int) -> None:
    net = JointBaseline(tasks, backbone="test_resnet", in_chans=in_chans, hidden=30).eval()
    out = net(torch.randn(2, in_chans, 64, 64))
    assert {head: tuple(logits.shape) for head, logits in out.items()} == {t: (2, n) for t, n in tasks.items()}
    conv, norm = 3 * 3 * C * 30, 2 * 30  # bias-free conv, then BatchNorm weight and bias
    assert count(net) - count(net.trunk) == conv + norm + sum(30 * n + n for n in tasks.values())


def test_joint_baseline_needs_a_task() -> None:
    with pytest.raises(ConfigError, match="JointBaseline needs at least one task, but the data has none"):
        JointBaseline({}, backbone="test_resnet")
    with pytest.raises(ConfigError, match=re.escape("--model.net.hidden must be at least 1; got 0.")):
        JointBaseline(IDRID, backbone="test_resnet", hidden=0)


@pytest.mark.parametrize("net", [CANet, JointBaseline])
def test_every_weight_gets_a_gradient_even_on_trunks_with_an_unused_head(net: type[nn.Module]) -> None:
    """timm's MobileNetV3 keeps a conv_head outside forward_features; DDP stops on weights without gradients."""
    model = net({"dr": 5, "dme": 3}, backbone="mobilenetv3_small_100")
    assert isinstance(model.trunk.conv_head, nn.Identity)
    outputs = model(torch.randn(2, 3, 64, 64))
    sum(output.sum() for output in outputs.values()).backward()
    assert [name for name, p in model.named_parameters() if p.grad is None] == []
