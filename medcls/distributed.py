"""Results of several processes put together exactly: every image once, in the same order as on one process."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.distributed as dist
from torch import Tensor


def gather_unique(ids: list[str], rows: Mapping[str, Tensor]) -> tuple[list[str], dict[str, Tensor]]:
    """All processes' rows (CPU tensors with one row per id), each image once, ordered by id.

    Under DDP the distributed sampler pads the last batches with repeated images, and each process holds only
    its share; metrics computed on the gathered, de-duplicated rows equal those of a single-process run. Must be
    called on every process.

    Args:
        ids: The image id of each row.
        rows: Name -> tensor whose first dimension matches ``ids``.
    """
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        parts: list = [None] * dist.get_world_size()
        dist.all_gather_object(parts, (ids, dict(rows)))
        ids = [image_id for part_ids, _ in parts for image_id in part_ids]
        rows = {name: torch.cat([part_rows[name] for _, part_rows in parts]) for name in rows}
    first = {}
    for index, image_id in enumerate(ids):
        first.setdefault(image_id, index)
    keep = [first[image_id] for image_id in sorted(first)]
    return [ids[i] for i in keep], {name: tensor[keep] for name, tensor in rows.items()}
