"""CANet (Li et al., IEEE TMI 2020): cross-disease attention for joint DR and DME grading, and its joint baseline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import timm
import torch
from torch import Tensor, nn

from medcls.nets.timm import load_trunk_weights

CrossAttention = Literal["both", "none", "dr_to_dme", "dme_to_dr"]


def _trunk(backbone: str, in_chans: int, pretrained: bool | str) -> nn.Module:
    """A timm model whose ``forward_features`` gives the unpooled C x H x W feature map.

    Layers that ``forward_features`` never calls (e.g. MobileNetV3's ``conv_head``, which belongs to its
    ``forward_head``) are removed: weights without gradients would stop DDP.
    """
    trunk = timm.create_model(backbone, pretrained=pretrained is True, num_classes=0, global_pool="", in_chans=in_chans)
    if isinstance(pretrained, str):
        load_trunk_weights(trunk, pretrained)
    for name in _layers_not_called(trunk, in_chans):
        parent, _, child = name.rpartition(".")
        setattr(trunk.get_submodule(parent), child, nn.Identity())
    return trunk


def _layers_not_called(trunk: nn.Module, in_chans: int) -> list[str]:
    """Names of the layers with weights that ``forward_features`` does not call, found by running it once."""
    called: set[nn.Module] = set()
    hooks = [module.register_forward_hook(lambda module, *_: called.add(module)) for module in trunk.modules()]
    training = trunk.training
    try:
        with torch.no_grad():
            trunk.eval().forward_features(torch.zeros(1, in_chans, *trunk.pretrained_cfg["input_size"][1:]))
    finally:
        for hook in hooks:
            hook.remove()
        trunk.train(training)
    return [
        name
        for name, module in trunk.named_modules()
        if module not in called and next(module.parameters(recurse=False), None) is not None
    ]


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
    """

    def __init__(
        self,
        tasks: Mapping[str, int],
        backbone: str = "resnet50",
        in_chans: int = 3,
        pretrained: bool | str = False,
        dropout: float = 0.3,
        feature_dim: int = 1024,
        reduction: int = 16,
        cross_attention: CrossAttention = "both",
    ) -> None:
        super().__init__()
        if len(tasks) != 2:
            raise ValueError(f"CANet grades two diseases, DR then DME; got tasks {dict(tasks)}.")
        dr, dme = tasks
        # The tasks whose final features receive the other disease's, by setting.
        receivers = {"both": (dr, dme), "none": (), "dr_to_dme": (dme,), "dme_to_dr": (dr,)}
        if cross_attention not in receivers:
            raise ValueError(f"cross_attention must be one of {sorted(receivers)}; got {cross_attention!r}.")
        self.trunk = _trunk(backbone, in_chans, pretrained)
        self.dropout = nn.Dropout(dropout)
        channels = self.trunk.num_features
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
    """

    def __init__(
        self,
        tasks: Mapping[str, int],
        backbone: str = "resnet50",
        in_chans: int = 3,
        pretrained: bool | str = False,
        hidden: int = 300,
    ):
        super().__init__()
        if not tasks:
            raise ValueError("JointBaseline needs at least one task.")
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
