"""Every notebook runs top to bottom on tiny settings (``MEDCLS_NOTEBOOK_TINY=1``), so that none of them rots."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_the_three_walk_throughs_exist() -> None:
    assert [path.name for path in NOTEBOOKS] == [
        "01_mnist_tutorial.ipynb", "02_fundus_grading.ipynb", "03_data_considerations.ipynb",
    ]  # fmt: skip


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs_top_to_bottom_and_shows_its_figures(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.outputs and cell.execution_count is None for cell in code_cells(notebook)), (
        "commit notebooks without outputs (Jupyter: Edit > Clear Outputs of All Cells)"
    )
    monkeypatch.setenv("MEDCLS_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    # Runs in an empty folder: whatever a notebook writes (runs/, data, caches) lands there.
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    cells = code_cells(notebook)
    assert all(cell.execution_count is not None for cell in cells)
    figures = [output for cell in cells for output in cell.outputs if "image/png" in output.get("data", {})]
    assert len(figures) >= 3, f"{path.name} shows {len(figures)} figures"
