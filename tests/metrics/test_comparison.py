from pathlib import Path

import numpy as np
import pytest
import torch

from medcls.errors import DataError
from medcls.metrics.comparison import compare, markdown_table
from medcls.metrics.report import read_predictions, write_predictions
from medcls.metrics.stats import delong_test
from tests.scripts import run_script

VIEWS = {"referable_dr": ("dr", 2)}


def write_model(path: Path, labels: np.ndarray, skill: float, seed: int, ids: list[str] | None = None) -> Path:
    """Predictions whose scores lean towards the true grade by ``skill``."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(labels), 5)) + skill * np.eye(5)[labels]
    probabilities = torch.from_numpy(logits).softmax(1).float()
    ids = ids or [f"test/{i:03d}" for i in range(len(labels))]
    write_predictions(path, ids, {"dr": probabilities}, {"dr": torch.from_numpy(labels)})
    return path


@pytest.fixture
def labels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 5, 120)


def test_rows_per_model_and_question_with_delong_against_the_reference(tmp_path: Path, labels: np.ndarray) -> None:
    files = {
        "good": write_model(tmp_path / "a.csv", labels, 3.0, 1),
        "weak": write_model(tmp_path / "b.csv", labels, 0.5, 2),
    }
    rows = compare(files, "good", VIEWS, n_resamples=200)
    assert [(r["model"], r["question"]) for r in rows] == [
        ("good", "dr"), ("good", "referable_dr"), ("weak", "dr"), ("weak", "referable_dr")
    ]  # fmt: skip
    assert "delong_p" not in rows[0] and "delong_p" not in rows[1] and "delong_p" not in rows[2]  # binary only
    _, good, truth = read_predictions(files["good"])
    _, weak, _ = read_predictions(files["weak"])
    referable = (truth["dr"] >= 2).astype(int)
    expected = delong_test(referable, good["dr"][:, 2:].sum(1), weak["dr"][:, 2:].sum(1))
    assert rows[3]["delong_p"] == pytest.approx(expected.p_value, rel=1e-6)
    assert rows[3]["auc_difference"] == pytest.approx(expected.auc_b - expected.auc_a, abs=1e-9)
    assert rows[3]["auc_difference"] < 0 and rows[3]["delong_p"] < 0.05  # the weak model is worse
    for row in rows:
        low, high = row["auc_ci"]
        assert low <= row["auc"] <= high
    table = markdown_table(rows, "good")
    assert table.count("\n") == 2 + len(rows) and "p (DeLong)" in table


def test_files_of_other_images_or_without_labels_are_refused(tmp_path: Path, labels: np.ndarray) -> None:
    a = write_model(tmp_path / "a.csv", labels, 1.0, 1)
    b = write_model(tmp_path / "b.csv", labels, 1.0, 2, ids=[f"other/{i}" for i in range(len(labels))])
    with pytest.raises(DataError, match="b.csv holds other images"):
        compare({"a": a, "b": b}, "a", {})
    unlabelled = tmp_path / "predict.csv"
    write_predictions(unlabelled, ["x"], {"dr": torch.full((1, 5), 0.2)})
    with pytest.raises(DataError, match="predict.csv has no true classes"):
        read_predictions(unlabelled)


def test_script_writes_markdown_and_csv(tmp_path: Path, labels: np.ndarray, monkeypatch, capsys) -> None:
    a, b = write_model(tmp_path / "a.csv", labels, 3.0, 1), write_model(tmp_path / "b.csv", labels, 0.5, 2)
    out = tmp_path / "comparison"
    args = [str(a), str(b), "--names", "A", "B", "--views", "referable_dr=dr:2", "--resamples", "100",
            "--out", str(out)]  # fmt: skip
    run_script("compare.py", args, monkeypatch)
    assert out.with_suffix(".md").read_text() == capsys.readouterr().out.rstrip("\n") + "\n"
    csv_lines = out.with_suffix(".csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 4 and csv_lines[0].startswith("model,question,n,auc,auc_ci_low,auc_ci_high")


def test_kappa_is_weighted_as_the_reference_report_records_the_task_order(tmp_path: Path, labels: np.ndarray) -> None:
    (tmp_path / "a").mkdir()
    files = {"model": write_model(tmp_path / "a" / "predictions.csv", labels, 1.0, 1)}
    _, probabilities, truth = read_predictions(files["model"])
    predicted = probabilities["dr"].argmax(1)
    sklearn = pytest.importorskip("sklearn.metrics")
    graded = compare(files, "model", {}, n_resamples=20)[0]["kappa"]  # no metrics.json: ordinal, as before
    assert graded == pytest.approx(sklearn.cohen_kappa_score(truth["dr"], predicted, weights="quadratic"))
    (tmp_path / "a" / "metrics.json").write_text('{"ordinal_tasks": []}')
    nominal = compare(files, "model", {}, n_resamples=20)[0]["kappa"]
    assert nominal == pytest.approx(sklearn.cohen_kappa_score(truth["dr"], predicted))
