"""A folder per class (torchvision's ImageFolder layout), optionally inside train / val / test folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medcls.data.labelled import LabelledImagesDataModule
from medcls.data.preprocessing import PlainPreprocessing, Preprocessing
from medcls.data.readers.folder import read_folder
from medcls.data.readers.table import LabelledImages


class FolderDataModule(LabelledImagesDataModule):
    """Images sorted into a folder per class, ``root/<class>/*``, or ``root/{train,val,test}/<class>/*``.

    One task, ``task``, whose classes are the class folders in sorted order (as torchvision's
    ``ImageFolder`` has them) or as ``class_names`` orders them. For two classes, class 1 is the positive
    class of the ROC and the operating points. With split folders they give the splits (val carved from
    train where there is none); otherwise the images are split as
    :class:`~medcls.data.labelled.LabelledImagesDataModule` describes.

    Args:
        root: The folder holding the class folders (or the split folders).
        task: The task's name, in metrics, predictions and checkpoints.
        class_names: The class folders in index order (e.g. ``[normal, pneumonia]``); must name them all.
        ordinal: The classes are ordered grades (their folders sort in grade order, or ``class_names`` says it).
        preprocessing: Each image file to the pixels cached: ``PlainPreprocessing`` (unset: ``PlainPreprocessing()``,
            no crop, aspect kept, colour), ``XRayPreprocessing`` (grey) or ``FundusPreprocessing``.
        **kwargs: Split settings (``val_size``, ``test_size`` without split folders, ``num_folds``, ``fold``,
            ``split_seed``) of :class:`~medcls.data.labelled.LabelledImagesDataModule`, and its cache, transform,
            loader and prediction settings.
    """

    def __init__(
        self,
        root: str | Path,
        task: str = "label",
        class_names: list[str] | None = None,
        ordinal: bool = False,
        preprocessing: Preprocessing | None = None,
        **kwargs: Any,
    ) -> None:
        self.folder, self.task, self.given_class_names = Path(root), task, class_names
        names = self.read_labelled().class_names
        super().__init__(root, preprocessing or PlainPreprocessing(), names, [task] if ordinal else [], **kwargs)

    def read_labelled(self) -> LabelledImages:
        """List and validate the class folders and their images."""
        return read_folder(self.folder, self.task, self.given_class_names)
