from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from jsonargparse import ArgumentParser, lazy_instance

from medcls.data.preprocessing import PlainPreprocessing, Preprocessing, XRayPreprocessing


def parser_of(default: Preprocessing) -> ArgumentParser:
    """A parser with a preprocessing option, as a data module's ``--data.preprocessing``."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--preprocessing", type=Preprocessing, default=default)
    return parser


@pytest.fixture
def parser() -> ArgumentParser:
    return parser_of(lazy_instance(PlainPreprocessing, size=256))


def test_a_config_chooses_a_preprocessing_by_class_name(parser):
    config = parser.parse_string(
        """
        preprocessing:
          class_path: XRayPreprocessing
          init_args: {size: 384}
        """
    )
    assert parser.instantiate(config).preprocessing == XRayPreprocessing(size=384, fit="pad", grey=True)
    config = parser.parse_args(["--preprocessing", "medcls.data.preprocessing.XRayPreprocessing",
                                "--preprocessing.fit", "crop"])  # fmt: skip
    assert parser.instantiate(config).preprocessing == XRayPreprocessing(size=256, fit="crop")
    assert parser.instantiate(parser.parse_args([])).preprocessing == PlainPreprocessing(size=256)


@pytest.mark.parametrize(
    ("default", "chosen", "grey"),
    [(PlainPreprocessing, "XRayPreprocessing", True), (XRayPreprocessing, "PlainPreprocessing", False)],
)
def test_switching_class_keeps_the_chosen_class_colour(default, chosen, grey):
    # jsonargparse carries the default's init_args, its defaults included, into the class chosen instead.
    parser = parser_of(lazy_instance(default))
    preprocessing = parser.instantiate(parser.parse_args(["--preprocessing", chosen])).preprocessing
    assert type(preprocessing).__name__ == chosen and preprocessing.grey is grey
    explicit = parser.parse_args(["--preprocessing", chosen, f"--preprocessing.grey={not grey}"])
    assert parser.instantiate(explicit).preprocessing.grey is not grey


def test_help_shows_each_setting(parser, capsys):
    with pytest.raises(SystemExit):
        parser.parse_args(["--preprocessing.help", "XRayPreprocessing"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "A radiograph resized to a square" in shown and "--preprocessing.fit {pad,crop}" in shown
    assert "pads the shorter one on both sides with black" in shown and "takes colour; unset: grey." in shown


@dataclass(frozen=True)
class Stripes(Preprocessing):
    """A preprocessing of one's own: a required size field, and no property for it."""

    kind: ClassVar[str] = "stripe"
    mirror_invariant: ClassVar[bool] = False
    channels: ClassVar[int] = 1

    size: int

    def __call__(self, path: Path) -> np.ndarray:
        return np.zeros((self.size, self.size, 1), dtype=np.uint8)


def test_a_subclass_may_make_size_a_required_field():
    assert Stripes(8).size == 8 and Stripes(8)(Path("any")).shape == (8, 8, 1)


def test_the_contract_is_abstract():
    with pytest.raises(TypeError, match="abstract"):
        Preprocessing()

    @dataclass(frozen=True)
    class WithoutCall(Preprocessing):
        channels: ClassVar[int] = 3
        size: int = 8

    with pytest.raises(TypeError, match="__call__"):
        WithoutCall()
