from pathlib import Path

import pytest
import torch

from medcls.io import AtomicCheckpointIO, atomic_write


def test_an_interrupted_write_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    path = atomic_write(tmp_path / "table.csv", lambda file: file.write("a,b\n1,2\n"))

    def half_way(file) -> None:
        file.write("a,b\n")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half_way)
    assert path.read_text() == "a,b\n1,2\n" and list(tmp_path.iterdir()) == [path]


def test_an_interrupted_checkpoint_leaves_the_previous_checkpoint_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint_io, path = AtomicCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    checkpoint_io.save_checkpoint({"epoch": 0, "weights": torch.ones(3)}, path)

    def half_way(checkpoint: dict, file) -> None:
        file.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", half_way)
    with pytest.raises(KeyboardInterrupt):
        checkpoint_io.save_checkpoint({"epoch": 1, "weights": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert checkpoint_io.load_checkpoint(path)["epoch"] == 0 and list(path.parent.iterdir()) == [path]
    checkpoint_io.save_checkpoint({"epoch": 1, "weights": torch.zeros(3)}, path)
    assert checkpoint_io.load_checkpoint(path)["epoch"] == 1
