"""Users' own data as a folder per class, torchvision's ``ImageFolder`` layout, optionally split in advance.

Two layouts are read::

    root/normal/0001.png            root/train/normal/0001.png
    root/normal/more/0002.png       root/train/tuberculosis/0003.png
    root/tuberculosis/0003.png      root/val/normal/0004.png
                                    root/test/tuberculosis/0005.png

The second is recognised by its sub-folders: ``train`` and ``val``, ``test`` or both, and nothing else (hidden
folders aside; files beside the folders are left out in both layouts, as ``ImageFolder`` leaves them). Classes
are the class folders' names in sorted order (those of ``train``; ``val`` and ``test`` may lack a class but add
none), unless given. Images are found as ``ImageFolder`` finds them, at any depth inside their class folder and
with any suffix of :data:`~medcls.data.readers.table.IMAGE_EXTENSIONS`; hidden files and folders are left out.
"""

from __future__ import annotations

import os
from pathlib import Path

from torchvision.datasets.folder import find_classes, make_dataset

from medcls.data.readers.records import Record
from medcls.data.readers.table import SPLIT_NAMES, LabelledImages, check_class_names, is_image_file
from medcls.errors import DataError


def read_folder(root: Path, task: str = "label", class_names: list[str] | None = None) -> LabelledImages:
    """Read and validate a folder per class, or such folders under ``train``, ``val`` and ``test``.

    Args:
        root: The folder of class folders, or of split folders of class folders.
        task: The name of the one task, whose classes the folders are.
        class_names: The class names in the order of their indices; they must be the class folders' names.

    Returns:
        One record per image, in the order of their ids (the paths relative to the root, ``/``-separated, e.g.
        ``train/normal/0001.png``); the task's class names; the splits from the split folders, if any.

    Raises:
        ConfigError: If ``class_names`` has fewer than 2 names, or one twice.
        DataError: If the root is not a folder, there are fewer than 2 class folders, the class folders are not
            the ``class_names``, a class folder holds no image, or ``val`` or ``test`` has a class ``train`` lacks.
    """
    if class_names is not None:
        check_class_names({task: class_names})
    root = Path(root).absolute()
    if not root.is_dir():
        raise DataError(f"{root} is not a folder: expected one sub-folder of images per class.")
    splits = _split_folders(root)
    top = root / "train" if splits else root
    names = _class_order(top, _class_folders(top), class_names)
    for split in splits[1:]:
        extra = sorted(set(_class_folders(root / split)) - set(names))
        if extra:
            raise DataError(
                f"{root / split}: class folder(s) {', '.join(extra)} missing from {top}; "
                "every class needs training images."
            )
    folders = [(split, root / split) for split in splits] or [(None, root)]
    records = sorted(
        (record for split, folder in folders for record in _read_classes(root, folder, task, names)),
        key=lambda record: record.id,
    )
    return LabelledImages(
        records=records,
        class_names={task: names},
        given_splits={record.id: record.id.split("/")[0] for record in records} if splits else None,
    )


def _split_folders(root: Path) -> list[str]:
    """The split folders in :data:`SPLIT_NAMES` order if the root is split in advance, else none."""
    folders = {entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith(".")}
    if "train" in folders and len(folders) > 1 and folders <= set(SPLIT_NAMES):
        return [split for split in SPLIT_NAMES if split in folders]
    return []


def _class_folders(folder: Path) -> list[str]:
    try:
        classes, _ = find_classes(folder)
    except FileNotFoundError:  # no sub-folder at all
        classes = []
    return [name for name in classes if not name.startswith(".")]


def _class_order(folder: Path, found: list[str], given: list[str] | None) -> list[str]:
    if given is None:
        if len(found) < 2:
            raise DataError(
                f"{folder} has {len(found)} class folder(s) {found}; expected one sub-folder of images per class, "
                "at least 2."
            )
        return found
    missing = [name for name in given if name not in found]
    extra = [name for name in found if name not in given]
    if missing or extra:
        raise DataError(
            f"{folder}: the class folders are not the --data.class_names {given}: "
            f"missing {missing or 'none'}, not among them {extra or 'none'}."
        )
    return list(given)


def _read_classes(root: Path, folder: Path, task: str, names: list[str]) -> list[Record]:
    """The images of the class folders in ``folder``; ``val`` and ``test`` may lack a class."""
    present = {name: index for index, name in enumerate(names) if (folder / name).is_dir()}
    if not present:
        raise DataError(f"{folder} holds no class folder; expected one sub-folder of images per class.")
    samples = make_dataset(
        folder,
        present,
        is_valid_file=lambda path: is_image_file(Path(path).relative_to(folder)),
        allow_empty=True,
    )
    empty = sorted(present.keys() - {names[index] for _, index in samples})
    if empty:
        raise DataError(
            f"{folder / empty[0]}: a class folder without images (files ending in .png, .jpg, ...); "
            "add images or remove the folder."
        )
    return [
        Record(id=Path(path).relative_to(root).as_posix(), path=Path(path), labels={task: index})
        for path, index in samples
    ]
