"""Losses of a classification head that the Classifier can choose by name."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def focal_loss(
    logits: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    weight: Tensor | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
) -> Tensor:
    """Multi-class focal loss (Lin et al. 2017): cross-entropy scaled by ``(1 - p_true) ** gamma``.

    Confidently right images contribute little, so training concentrates on the hard (often rare) ones;
    ``gamma = 0`` is plain cross-entropy.

    Args:
        logits: B x K scores.
        target: B class indices.
        gamma: Focusing parameter.
        weight: Optional per-class weights of the cross-entropy.
        label_smoothing: Label smoothing of the cross-entropy.
        ignore_index: A target value left out (images unlabelled for the task): the mean is over the others, and 0
            where there are none.
    """
    labelled = target != ignore_index
    cross_entropy = F.cross_entropy(
        logits, target, weight=weight, reduction="none", label_smoothing=label_smoothing, ignore_index=ignore_index
    )
    p_true = logits.softmax(dim=1).gather(1, target.clamp(min=0)[:, None]).squeeze(1)
    return ((1 - p_true) ** gamma * cross_entropy * labelled).sum() / labelled.sum().clamp(min=1)
