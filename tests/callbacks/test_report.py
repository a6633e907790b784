from functools import partial
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from torch import Tensor, nn

from medcls.callbacks import EvaluationReport
from medcls.data import MNISTDataModule
from medcls.errors import MedclsError
from medcls.models import Classifier


class NaNForOddImages(nn.Module):
    """Finite weights whose logits overflow for some images, as a net in half precision can."""

    def __init__(self, tasks: dict[str, int]) -> None:
        super().__init__()
        self.linear = nn.Linear(28 * 28, tasks["digit"])

    def forward(self, x: Tensor) -> Tensor:
        logits = self.linear(x.flatten(1))
        logits[1::2] = float("nan")
        return logits


@pytest.mark.parametrize("stage", ["test", "predict"])
def test_outputs_that_are_not_finite_are_refused_and_nothing_is_written(mnist_root: Path, tmp_path: Path,
                                                                        stage: str) -> None:  # fmt: skip
    model = Classifier(net=partial(NaNForOddImages), tasks={"digit": 10})
    data = MNISTDataModule(mnist_root, eval_batch_size=50)
    trainer = Trainer(callbacks=[EvaluationReport(bootstrap_resamples=10)], logger=False, default_root_dir=tmp_path /
                      "out", enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    with pytest.raises(MedclsError, match=r"outputs are NaN or infinite for 50 of 100 images \(e.g. test/00001\)"):
        getattr(trainer, stage)(model, datamodule=data)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.csv"))
    assert torch.isfinite(model.net.linear.weight).all()
