"""A table of labelled images (CSV, TSV or Excel) and an image folder: a user's own data set."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Literal

from medcls.data.labelled import LabelledImagesDataModule
from medcls.data.preprocessing import Preprocessing, XRayPreprocessing
from medcls.data.readers.table import LabelledImages, read_table
from medcls.errors import ConfigError


class TableDataModule(LabelledImagesDataModule):
    """Images listed in a table with one label column per task: a hospital's export, a Kaggle download.

    Each row names an image (a path relative to ``root``, with or without its extension) and its classes,
    as integers (``0``, ``1``, ...) or names (``normal``, ``tuberculosis``). Each label column is a task,
    named after its column. Without ``class_names`` a task's classes are, for integer labels, ``"0"`` up
    to the largest, and for names the distinct names in sorted order (``normal`` before
    ``tuberculosis``); ``class_names`` chooses them and their order. For a two-class task class 1 is the
    positive class of the ROC and the operating points. The class names are kept in the checkpoint and
    name the classes in ``predictions.csv``, ``metrics.json`` and the figures.

    A ``split_column`` (``train``/``val``/``test``) gives the splits; without one, see
    :class:`~medcls.data.labelled.LabelledImagesDataModule`. A ``group_column`` (patient, exam) keeps
    each group's images in one split.

    Args:
        table: The table: ``.csv``, ``.tsv`` or ``.txt`` (``,``, ``;`` or tab separated, any usual
            encoding), or an Excel ``.xlsx`` / ``.xls`` sheet (its first worksheet).
        root: The folder the image paths of the table are relative to.
        image_column: The column of the image paths.
        label_columns: The label columns, one per task (e.g. ``[diagnosis]`` or ``[dr, dme]``).
        class_names: Task -> its class names in index order (e.g. ``{diagnosis: [normal, tuberculosis]}``);
            labels must then be these names or their indices. Tasks not given take theirs from the table.
        group_column: The column of each image's patient or exam (optional).
        split_column: The column saying ``train``, ``val`` or ``test`` for each image (optional).
        missing_labels: What a row with an empty label cell (e.g. an ungradable image) becomes: ``drop``
            leaves it out (the count is logged); ``mask`` keeps it, that task left out of its loss and metrics.
        ordinal_tasks: The tasks whose classes are ordered (grades): quadratic weighted kappa for those.
        preprocessing: Each image file to the pixels cached: ``XRayPreprocessing`` (unset: ``XRayPreprocessing()``,
            no crop, aspect kept, grey), ``PlainPreprocessing`` (colour photographs) or ``FundusPreprocessing``.
        **kwargs: Split settings (``val_size``, ``test_size`` where the table gives no splits, ``num_folds``,
            ``fold``, ``split_seed``) of :class:`~medcls.data.labelled.LabelledImagesDataModule`, and its cache,
            transform, loader and prediction settings.
    """

    def __init__(
        self,
        table: str | Path,
        root: str | Path,
        label_columns: list[str],
        image_column: str = "image",
        class_names: dict[str, list[str]] | None = None,
        group_column: str | None = None,
        split_column: str | None = None,
        missing_labels: Literal["drop", "mask"] = "drop",
        ordinal_tasks: list[str] | None = None,
        preprocessing: Preprocessing | None = None,
        **kwargs: Any,
    ) -> None:
        if not label_columns:
            raise ConfigError("--data.label_columns is empty; name the table's label column of each task.")
        self.reading = partial(
            read_table, Path(table), Path(root), image_column, list(label_columns), class_names, group_column,
            split_column, missing_labels,
        )  # fmt: skip
        given = class_names or {}
        # The table is read here only where it must name classes; a checkpoint's settings can then predict
        # new images without the training table at hand.
        names = given if all(column in given for column in label_columns) else self.read_labelled().class_names
        self.predict_image_column = image_column
        names = {column: list(names[column]) for column in label_columns}
        super().__init__(root, preprocessing or XRayPreprocessing(), names, ordinal_tasks, **kwargs)

    def read_labelled(self) -> LabelledImages:
        """Read and validate the table and its images."""
        return self.reading()
