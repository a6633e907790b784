"""Any timm backbone with one linear head per task on its pooled features."""

from __future__ import annotations

from collections.abc import Mapping

import timm
from torch import Tensor, nn


class TimmNet(nn.Module):
    """A timm model by name, classifier removed, with a linear head per task.

    Args:
        tasks: Task name -> number of classes; one head each, on the pooled features.
        name: A ``timm.list_models()`` name, e.g. ``resnet50``, ``efficientnet_b0``, ``resnet10t``.
        in_chans: Input channels (1 for grey images).
        drop_rate: Dropout before the heads.
    """

    def __init__(self, tasks: Mapping[str, int], name: str = "resnet18", in_chans: int = 3, drop_rate: float = 0.0):
        super().__init__()
        self.trunk = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_chans)
        self.dropout = nn.Dropout(drop_rate)
        # Models with a conv head after the feature map (MobileNetV3) pool to head_hidden_size, not num_features.
        width = getattr(self.trunk, "head_hidden_size", None) or self.trunk.num_features
        self.heads = nn.ModuleDict({task: nn.Linear(width, n) for task, n in tasks.items()})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Logits per task."""
        features = self.dropout(self.trunk(x))
        return {task: head(features) for task, head in self.heads.items()}
