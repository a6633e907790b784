import os
import socket
from pathlib import Path

import pytest
import torch

from medcls.io import AtomicCheckpointIO, atomic_directory, atomic_write


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


def test_a_folder_appears_whole_or_not_at_all(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), atomic_directory(tmp_path / "tree") as partial:
        (partial / "half").write_text("x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(tmp_path / "tree") as partial:
        assert partial.parent == tmp_path and partial.name.startswith(".tree.partial-")
        (partial / "whole").write_text("x")
    assert [p.name for p in tmp_path.iterdir()] == ["tree"] and (tmp_path / "tree" / "whole").read_text() == "x"


def test_a_folder_in_the_way_is_kept_unless_condemned_and_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "first").write_text("x")
    with atomic_directory(tmp_path / "tree") as partial:  # a build that finished first wins
        (partial / "second").write_text("x")
    assert os.listdir(tmp_path / "tree") == ["first"] and os.listdir(tmp_path) == ["tree"]
    with atomic_directory(tmp_path / "tree", replace=lambda target: not (target / "valid").exists()) as partial:
        (partial / "valid").write_text("x")
    assert os.listdir(tmp_path / "tree") == ["valid"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError), atomic_directory(tmp_path / "file"):
        pass
    assert sorted(os.listdir(tmp_path)) == ["file", "tree"]


def test_partial_folders_of_dead_builds_on_this_host_are_removed(tmp_path: Path) -> None:
    host = socket.gethostname()
    dead = tmp_path / f".old.partial-{host}-{2**22 + 12345}-abcd1234"  # above any pid_max: no such process
    alive = tmp_path / f".busy.partial-{host}-{os.getpid()}-abcd1234"
    elsewhere = tmp_path / f".far.partial-{host}x-{2**22 + 12345}-abcd1234"
    for folder in (dead, alive, elsewhere):
        folder.mkdir()
    with atomic_directory(tmp_path / "new"):
        pass
    assert sorted(os.listdir(tmp_path)) == sorted([alive.name, elsewhere.name, "new"])
