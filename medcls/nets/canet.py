"""CANet (Li et al., IEEE TMI 2020): cross-disease attention for joint DR and DME grading, and its joint baseline."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from medcls.errors import ConfigError
from medcls.nets.checks import check_positive, check_probability
from medcls.nets.timm import create_trunk

CrossAttention = Literal["both", "none", "dr_to_dme", "dme_to_dr"]


def _trunk(backbone: str, in_chans: int, pretrained: bool | str | Path) -> nn.Module:
    """A timm model whose ``forward_features`` gives the unpooled C x H x W feature map.

    Layers that ``forward_features`` never calls (e.g. MobileNetV3's ``conv_head``, which belongs to its
    ``forward_head``) are removed: weights without gradients would stop DDP.

    Raises:
        ConfigError: The backbone gives no N x C x H x W map (vision transformers give tokens, Swin channels last),
            or a setting of :func:`medcls.nets.timm.create_trunk` is impossible.
        CheckpointError: The ``pretrained`` weights cannot be had.
    """
    trunk = create_trunk(backbone, "--model.net.backbone", in_chans, pretrained, global_pool="")
    features, called = _run_forward_features(trunk, in_chans)
    if features.ndim != 4 or features.shape[1] != trunk.num_features:
        raise ConfigError(
            f"--model.net.backbone {backbone!r} gives features of shape {tuple(features.shape)}, not a map of its "
            f"{trunk.num_features} channels (N x C x H x W); CANet and JointBaseline need a convolutional backbone, "
            "e.g. resnet50 or efficientnet_b0."
        )
    for name, module in trunk.named_modules():
        if module not in called and next(module.parameters(recurse=False), None) is not None:
            parent, _, child = name.rpartition(".")
            setattr(trunk.get_submodule(parent), child, nn.Identity())
    return trunk


def _run_forward_features(trunk: nn.Module, in_chans: int) -> tuple[Tensor, set[nn.Module]]:
    """The features of a blank image of the trunk's pretraining size, and the modules that computed them."""
    called: set[nn.Module] = set()
    hooks = [module.register_forward_hook(lambda module, *_: called.add(module)) for module in trunk.modules()]
    training = trunk.training
    try:
        with torch.no_grad():
            features = trunk.eval().forward_features(torch.zeros(1, in_chans, *trunk.pretrained_cfg["input_size"][1:]))
    finally:
        for hook in hooks:
            hook.remove()
        trunk.train(training)
    return features, called


class ChannelGate(nn.Module):
    """CBAM channel attention: re-weights each channel of a feature map by a learnt gate in (0, 1).

    The gate is ``sigmoid(MLP(avg_pool(x)) + MLP(max_pool(x)))`` with one MLP shared by both pools,
    ``Linear(C -> C/r) -> ReLU -> Linear(C/r -> C)``, with biases.

    Args:
        channels: Channels C of the input.
        reduction: Reduction ratio r of the MLP's hidden layer (C // r units).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        if not 1 <= reduction <= channels:
            raise ValueError(f"reduction must be between 1 and the {channels} channels; got {reduction}.")
        hidden = channels // reduction
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, x: Tensor) -> Tensor:
        """Gate a N x C x H x W map channel-wise; same shape out."""
        gate = torch.sigmoid(self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3))))
        return x * gate[:, :, None, None]


class SpatialGate(nn.Module):
    """CBAM spatial attention: re-weights each position of a feature map by a learnt gate in (0, 1).

    The channel-wise max and mean maps, stacked, go through Conv2d(2 -> 1, 7x7, no bias) -> BatchNorm -> sigmoid.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size=7, padding=3, bias=False)
        self.norm = nn.BatchNorm2d(1)

    def forward(self, x: Tensor) -> Tensor:
        """Gate a N x C x H x W map position-wise; same shape out."""
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.norm(self.conv(pooled)))


class DiseaseSpecificAttention(nn.Module):
    """CANet's disease-specific module: channel gate, spatial gate, global average pool, linear projection.

    Args:
        channels: Channels C of the trunk's feature map.
        feature_dim: Size D of the disease-specific feature (the projection has no nonlinearity).
        reduction: Reduction ratio of the channel gate.
    """

    def __init__(self, channels: int, feature_dim: int = 1024, reduction: int = 16) -> None:
        super().__init__()
        self.channel = ChannelGate(channels, reduction)
        self.spatial = SpatialGate()
        self.project = nn.Linear(channels, feature_dim)

    def forward(self, x: Tensor) -> Tensor:
        """Map a N x C x H x W feature map to N x D disease-specific features."""
        return self.project(self.spatial(self.channel(x)).mean(dim=(2, 3)))


class CANet(nn.Module):
    """Cross-disease Attention Network for two tasks, DR and DME grading (Li et al., IEEE TMI 2020).

    The trunk's feature map (after dropout) goes through one disease-specific attention block per task,
    giving features ``f_dr`` and ``f_dme`` (D each) and the auxiliary heads ``<task>_aux``. The
    disease-dependent attention then adds a channel-gated copy of the other disease's features:
    ``dr_final = f_dr + cross[dr](f_dme)`` and ``dme_final = f_dme + cross[dme](f_dr)``, and the final
    heads, named after the tasks, classify those. Train the auxiliary heads with a smaller loss weight
    (the paper's lambda = 0.25) through the classifier's ``loss_weights``.

    "DR" is the first task of ``tasks`` and "DME" the second, whatever their names.

    Args:
        tasks: Task name -> number of classes; exactly two tasks, DR first, DME second
            (e.g. ``{"dr": 5, "dme": 3}`` for IDRiD, ``{"dr": 2, "dme": 3}`` for referable DR on Messidor).
        backbone: A ``timm.list_models()`` name; ``resnet50`` as in the paper (29.0 M parameters in all).
        in_chans: Input channels (1 for grey images).
        pretrained: Backbone weights: ``false`` (random), ``true`` (timm downloads them), or the path of a
            local weights file (offline; see :func:`medcls.nets.timm.load_trunk_weights`).
        dropout: Dropout on the trunk's feature map.
        feature_dim: Size D of the disease-specific features.
        reduction: Reduction ratio r of every channel gate's hidden layer (C/r and D/r units).
        cross_attention: Which disease-dependent attention to keep: ``both`` (CANet); ``none`` (disease-specific
            attention only); ``dr_to_dme`` (only DR features feed into DME: ``dme_final = f_dme + cross[dme](f_dr)``,
            ``dr_final = f_dr``); ``dme_to_dr`` (only DME features feed into DR). A dropped direction has no module.

    Raises:
        ConfigError: The data has other than two tasks, or a setting is impossible (an unknown backbone, one
            without a feature map, ``cross_attention``, ``reduction``...); the message names the option.
        CheckpointError: The ``pretrained`` weights cannot be had (see :func:`medcls.nets.timm.create_trunk`).
    """

    # The options that load weights files, and the values that load none (see ``without_weights_files``).
    weights_options: ClassVar[dict[str, Any]] = {"pretrained": False}

    def __init__(
        self,
        tasks: Mapping[str, int],
        backbone: str = "resnet50",
        in_chans: int = 3,
        pretrained: bool | str | Path = False,
        dropout: float = 0.3,
        feature_dim: int = 1024,
        reduction: int = 16,
        cross_attention: CrossAttention = "both",
    ) -> None:
        super().__init__()
        if len(tasks) != 2:
            raise ConfigError(
                f"CANet grades two diseases, DR then DME, but the data has tasks {dict(tasks)}; for other tasks use "
                "--model.net medcls.nets.JointBaseline or medcls.nets.TimmNet (a head per task)."
            )
        dr, dme = tasks
        # The tasks whose final features receive the other disease's, by setting.
        receivers = {"both": (dr, dme), "none": (), "dr_to_dme": (dme,), "dme_to_dr": (dr,)}
        if cross_attention not in receivers:
            raise ConfigError(
                f"--model.net.cross_attention must be one of {', '.join(receivers)}; got {cross_attention!r}."
            )
        check_probability(dropout, "--model.net.dropout")
        check_positive(feature_dim, "--model.net.feature_dim")
        self.trunk = _trunk(backbone, in_chans, pretrained)
        self.dropout = nn.Dropout(dropout)
        channels = self.trunk.num_features
        # Every channel gate needs a hidden unit: the specific ones gate the trunk's channels, the cross ones D.
        if not 1 <= reduction <= min(channels, feature_dim):
            raise ConfigError(
                f"--model.net.reduction must be between 1 and {min(channels, feature_dim)}, the fewer of the "
                f"{backbone} trunk's {channels} channels and --model.net.feature_dim {feature_dim}; got {reduction}."
            )
        self.specific = nn.ModuleDict(
            {task: DiseaseSpecificAttention(channels, feature_dim, reduction) for task in tasks}
        )
        self.aux_heads = nn.ModuleDict({task: nn.Linear(feature_dim, n) for task, n in tasks.items()})
        self.cross = nn.ModuleDict({task: ChannelGate(feature_dim, reduction) for task in receivers[cross_attention]})
        self.heads = nn.ModuleDict({task: nn.Linear(feature_dim, n) for task, n in tasks.items()})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Logits of the final heads (named after the tasks) and of the auxiliary heads (``<task>_aux``)."""
        features = self.dropout(self.trunk.forward_features(x))
        specific = {task: block(features) for task, block in self.specific.items()}
        dr, dme = specific
        other = {dr: specific[dme], dme: specific[dr]}
        logits = {}
        for task, head in self.heads.items():
            final = specific[task]
            if task in self.cross:
                # The gate works on maps; the other disease's vector is a D x 1 x 1 map.
                final = final + self.cross[task](other[task][:, :, None, None]).flatten(1)
            logits[task] = head(final)
        return logits | {f"{task}_aux": head(specific[task]) for task, head in self.aux_heads.items()}


class JointBaseline(nn.Module):
    """The "joint training" baseline of the CANet paper: a shared trunk and convolution, one linear head per task.

    Trunk feature map -> Conv2d(C -> hidden, 3x3, padding 1, no bias) -> BatchNorm -> ReLU -> global average pool
    -> Linear(hidden -> classes) per task.

    Args:
        tasks: Task name -> number of classes; one head each (e.g. ``{"dr": 5, "dme": 3}``).
        backbone: A ``timm.list_models()`` name; ``resnet50`` as in the paper.
        in_chans: Input channels (1 for grey images).
        pretrained: Backbone weights: ``false`` (random), ``true`` (timm downloads them), or the path of a
            local weights file (offline; see :func:`medcls.nets.timm.load_trunk_weights`).
        hidden: Channels of the shared convolution (300 in the paper).

    Raises:
        ConfigError: The data has no task, or a setting is impossible (an unknown backbone, one without a feature
            map, ``hidden``...); the message names the option.
        CheckpointError: The ``pretrained`` weights cannot be had (see :func:`medcls.nets.timm.create_trunk`).
    """

    # The options that load weights files, and the values that load none (see ``without_weights_files``).
    weights_options: ClassVar[dict[str, Any]] = {"pretrained": False}

    def __init__(
        self,
        tasks: Mapping[str, int],
        backbone: str = "resnet50",
        in_chans: int = 3,
        pretrained: bool | str | Path = False,
        hidden: int = 300,
    ):
        super().__init__()
        if not tasks:
            raise ConfigError(
                "JointBaseline needs at least one task, but the data has none; use a data module that labels images."
            )
        check_positive(hidden, "--model.net.hidden")
        self.trunk = _trunk(backbone, in_chans, pretrained)
        # No conv bias: the batch norm right after it has its own shift.
        self.shared = nn.Sequential(
            nn.Conv2d(self.trunk.num_features, hidden, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
        )
        self.heads = nn.ModuleDict({task: nn.Linear(hidden, n) for task, n in tasks.items()})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Logits per task."""
        pooled = self.shared(self.trunk.forward_features(x)).mean(dim=(2, 3))
        return {task: head(pooled) for task, head in self.heads.items()}
