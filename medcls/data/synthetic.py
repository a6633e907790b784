"""The built-in demo data: synthetic fundus photographs, written in IDRiD's layout and read as IDRiD is.

The images and labels come from :mod:`medcls.synthetic`; this module only writes them once under a
folder per generator setting and hands that folder to the real IDRiD reader, cache and splits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medcls.data.idrid import IDRiDDataModule
from medcls.data.readers.records import Record
from medcls.errors import ConfigError

# The module, not its functions: medcls.synthetic.trees imports the readers, hence this package, so
# either package may be imported first and find the other half-initialised.
from medcls.synthetic import trees


class SyntheticFundusDataModule(IDRiDDataModule):
    """Synthetic fundus photographs graded for DR (0-4) and DME (0-2): the built-in demo data.

    On first use it writes an IDRiD-layout tree (deterministic, IDRiD-like class imbalance) under
    ``root`` and from then on reads it through the real IDRiD reader, cache and splits, exactly as
    :class:`~medcls.data.idrid.IDRiDDataModule` reads the real data set.

    Args:
        root: Folder of the generated trees; each setting of the generator gets its own sub-folder.
        train: Number of training images (the validation split is carved from them), at least 2.
        test: Number of test images, at least 1.
        width: Image width in pixels, at least 16; the height keeps IDRiD's 4288 x 2848 aspect.
        seed: Seed of the generator.
        val_size: Fraction (or number) of the training images held out for validation.
        split_seed: Seed of the validation split.
        **kwargs: Cache, transform and loader settings of :class:`~medcls.data.fundus.FundusDataModule`.
    """

    def __init__(
        self,
        root: str | Path = ".cache/medcls/synthetic",
        train: int = 400,
        test: int = 100,
        width: int = 512,
        seed: int = 0,
        val_size: int | float = 0.2,
        split_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        for option, value, least in (("--data.train", train, 2), ("--data.test", test, 1), ("--data.width", width, 16)):
            if value < least:
                raise ConfigError(f"{option} is {value}; the synthetic data set needs at least {least}.")
        if seed < 0:
            raise ConfigError(f"--data.seed is {seed}; the generator's seed must be 0 or more.")
        tree = Path(root) / f"idrid-train{train}-test{test}-{width}px-seed{seed}"
        super().__init__(tree, val_size=val_size, split_seed=split_seed, **kwargs)
        self.generator = {"train": train, "test": test, "size": (width, round(width * 2848 / 4288)), "seed": seed}

    def split_records(self) -> dict[str, list[Record]]:
        """Generate the tree if it is not there yet, then read and split it like IDRiD."""
        trees.write_idrid_tree(self.root, **self.generator)
        return super().split_records()
