from __future__ import annotations

import pytest
import torch
from jsonargparse import ArgumentParser
from torchvision.transforms import v2

from medcls.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TimmNormalize,
    default_eval_transforms,
    default_train_transforms,
)


@pytest.mark.parametrize("model", ["resnet50", "resnet50.tv_in1k", "resnet10t"])
def test_imagenet_weights_get_imagenet_statistics(model: str) -> None:
    normalize = TimmNormalize(model)
    assert normalize.mean == list(IMAGENET_MEAN) and normalize.std == list(IMAGENET_STD)


@pytest.mark.parametrize("model", ["inception_v3.tf_in1k", "vit_base_patch16_224"])
def test_other_statistics_are_picked_up(model: str) -> None:
    normalize = TimmNormalize(model)
    assert normalize.mean == [0.5] * 3 and normalize.std == [0.5] * 3
    assert torch.allclose(normalize(torch.full((3, 4, 4), 0.75)), torch.full((3, 4, 4), 0.5))


@pytest.mark.parametrize("model", ["no_such_net", "resnet50.no_such_tag"])
def test_unknown_model(model: str) -> None:
    with pytest.raises(ValueError, match=model):
        TimmNormalize(model)


def test_built_from_a_yaml_pipeline() -> None:
    parser = ArgumentParser()
    parser.add_argument("--t", type=list[torch.nn.Module])
    config = parser.parse_string(
        """
        t:
          - class_path: torchvision.transforms.v2.ToDtype
            init_args: {dtype: torch.float32, scale: true}
          - class_path: medcls.data.transforms.TimmNormalize
            init_args: {model: vit_base_patch16_224}
        """
    )
    _, normalize = parser.instantiate_classes(config).t
    assert isinstance(normalize, TimmNormalize) and normalize.mean == [0.5] * 3


@pytest.mark.parametrize("pipeline", [default_train_transforms, default_eval_transforms])
def test_default_pipelines_give_normalised_floats(pipeline) -> None:
    image = torch.randint(0, 256, (3, 40, 56), dtype=torch.uint8)
    out = v2.Compose(pipeline(32))(image)
    assert out.dtype == torch.float32 and out.shape == (3, 32, 32)
    # ImageNet normalisation maps [0, 1] into about [-2.1, 2.7]; a uint8 image left unscaled would reach 255.
    assert out.min() < 0 and out.max() < 3
