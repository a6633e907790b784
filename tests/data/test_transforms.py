from __future__ import annotations

import pytest
import torch
from jsonargparse import ArgumentParser
from torchvision.transforms import v2

from medcls.data.transforms import (
    IMAGENET_GREY_MEAN,
    IMAGENET_GREY_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    TimmNormalize,
    default_eval_transforms,
    default_train_transforms,
    imagenet_statistics,
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


def test_grey_images_get_the_mean_of_the_three_statistics() -> None:
    normalize = TimmNormalize("resnet50", channels=1)
    assert normalize.mean == pytest.approx([sum(IMAGENET_MEAN) / 3]) and normalize.std == pytest.approx([0.226])
    assert normalize(torch.zeros(1, 2, 2)).shape == (1, 2, 2)
    with pytest.raises(ValueError, match="channels is 2"):
        TimmNormalize("resnet50", channels=2)


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
    _, normalize = parser.instantiate(config).t
    assert isinstance(normalize, TimmNormalize) and normalize.mean == [0.5] * 3


@pytest.mark.parametrize("pipeline", [default_train_transforms, default_eval_transforms])
def test_default_pipelines_give_normalised_floats(pipeline) -> None:
    image = torch.randint(0, 256, (3, 40, 56), dtype=torch.uint8)
    out = v2.Compose(pipeline(32))(image)
    assert out.dtype == torch.float32 and out.shape == (3, 32, 32)
    # ImageNet normalisation maps [0, 1] into about [-2.1, 2.7]; a uint8 image left unscaled would reach 255.
    assert out.min() < 0 and out.max() < 3


@pytest.mark.parametrize("pipeline", [default_train_transforms, default_eval_transforms])
def test_one_channel_pipelines_normalise_with_imagenet_grey_statistics(pipeline) -> None:
    image = torch.full((1, 40, 40), 128, dtype=torch.uint8)
    out = v2.Compose(pipeline(32, 1))(image)
    assert out.dtype == torch.float32 and out.shape == (1, 32, 32)
    expected = (128 / 255 - IMAGENET_GREY_MEAN[0]) / IMAGENET_GREY_STD[0]
    assert torch.allclose(out, torch.full_like(out, expected), atol=1e-5)
    assert IMAGENET_GREY_MEAN == (0.449,) and IMAGENET_GREY_STD == (0.226,)


def test_images_that_must_not_be_mirrored_are_rotated_slightly_instead() -> None:
    mirrored = default_train_transforms(32)
    unmirrored = default_train_transforms(32, channels=1, mirror=False)
    flips = (v2.RandomHorizontalFlip, v2.RandomVerticalFlip)
    assert sum(isinstance(t, flips) for t in mirrored) == 2 and not any(isinstance(t, flips) for t in unmirrored)
    (rotation,) = [t for t in unmirrored if isinstance(t, v2.RandomRotation)]
    assert rotation.degrees == [-5.0, 5.0]
    # An asymmetric image is never served mirrored: its bright left half stays on the left.
    image = torch.zeros((1, 64, 64), dtype=torch.uint8)
    image[:, :, :32] = 255
    pipeline = v2.Compose(unmirrored)
    torch.manual_seed(0)
    for _ in range(20):
        out = pipeline(image)
        assert out[:, :, :8].mean() > out[:, :, -8:].mean()


def test_only_grey_and_rgb_have_statistics() -> None:
    assert imagenet_statistics(3) == (IMAGENET_MEAN, IMAGENET_STD)
    with pytest.raises(ValueError, match="4 channels"):
        default_eval_transforms(32, 4)
