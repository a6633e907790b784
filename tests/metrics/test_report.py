import json
import logging
import warnings
from pathlib import Path

import numpy as np
import pytest

from medcls.errors import DataError
from medcls.metrics.report import evaluate_predictions, read_predictions, write_metrics, write_predictions


def random_predictions(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 softmax probabilities spanning many magnitudes (down to ~1e-9), and labels in range."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=6, size=(n, classes))
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities = (probabilities / probabilities.sum(1, keepdims=True)).astype(np.float32)
    return probabilities, rng.integers(0, classes, n)


def test_probabilities_read_back_bit_for_bit(tmp_path: Path) -> None:
    dr, dr_labels = random_predictions(200, 5, seed=0)
    dme, dme_labels = random_predictions(200, 3, seed=1)
    ids = [f"test/{i:03d}" for i in range(200)]
    path = tmp_path / "predictions.csv"
    write_predictions(path, ids, {"dr": dr, "dme": dme}, {"dr": dr_labels, "dme": dme_labels})
    read_ids, probabilities, labels = read_predictions(path)
    assert read_ids == ids
    assert probabilities["dr"].dtype == np.float32
    assert np.array_equal(probabilities["dr"], dr) and np.array_equal(probabilities["dme"], dme)
    assert np.array_equal(labels["dr"], dr_labels) and np.array_equal(labels["dme"], dme_labels)
    header = path.read_text().splitlines()[0]
    assert header == "id,dr,dr_pred,dr_pred_class," + ",".join(f"dr_prob_{k}" for k in range(5)) + (
        ",dme,dme_pred,dme_pred_class,"
    ) + ",".join(f"dme_prob_{k}" for k in range(3))


def test_metrics_recomputed_from_the_file_equal_those_of_the_run(tmp_path: Path) -> None:
    """What metrics.json reports is exactly what predictions.csv gives: near-ties included."""
    probabilities, labels = random_predictions(60, 5, seed=2)
    probabilities[1] = np.nextafter(probabilities[0], np.float32(1))  # a near-tie that 6 decimals would merge
    labels[:2] = [0, 4]
    views = {"referable_dr": ("dr", 2)}
    points = {"referable_dr": {"youden": 0.4}}
    options = {"binary_views": views, "operating_points": points, "n_resamples": 50}
    metrics = evaluate_predictions({"dr": probabilities}, {"dr": labels}, **options)
    write_predictions(tmp_path / "p.csv", [str(i) for i in range(60)], {"dr": probabilities}, {"dr": labels})
    write_metrics(tmp_path / "metrics.json", metrics)
    _, read, truth = read_predictions(tmp_path / "p.csv")
    again = evaluate_predictions(read, truth, **options)
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(json.dumps(again))
    assert again["referable_dr"]["youden/threshold"]["value"] == 0.4 and again["n"] == 60


def test_predict_outputs_read_without_labels(tmp_path: Path) -> None:
    probabilities, _ = random_predictions(4, 3, seed=3)
    path = tmp_path / "predict.csv"
    write_predictions(path, ["a", "b", "c", "d"], {"dme": probabilities})
    ids, read, labels = read_predictions(path, labelled=False)
    assert ids == ["a", "b", "c", "d"] and np.array_equal(read["dme"], probabilities) and labels == {}
    with pytest.raises(DataError, match="predict.csv has no true classes"):
        read_predictions(path)
    with pytest.raises(DataError, match=r"cannot read predictions file .*nowhere.csv"):
        read_predictions(tmp_path / "nowhere.csv")


def test_undefined_bootstrap_resamples_are_one_line_for_the_whole_report(caplog: pytest.LogCaptureFixture) -> None:
    probabilities, labels = random_predictions(12, 5, seed=4)
    labels[:] = [0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 1]  # class 4 once: its AUC is undefined on many resamples
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing reaches the warnings machinery
        with caplog.at_level(logging.WARNING, logger="medcls"):
            evaluate_predictions({"dr": probabilities}, {"dr": labels}, binary_views={"ref": ("dr", 2)})
    (record,) = [r for r in caplog.records if r.name.startswith("medcls")]
    assert "undefined on some bootstrap resamples" in record.getMessage()
    assert "(dr/auc, dr/auc_class_0" in record.getMessage() and "\n" not in record.getMessage()


def test_class_names_decisions_and_unlabelled_images_in_the_predictions(tmp_path: Path) -> None:
    probabilities = np.array([[0.9, 0.1], [0.3, 0.7], [0.45, 0.55]], dtype=np.float32)
    labels = np.array([0, -1, 1])  # the second image is unlabelled
    decided = {"tb@youden": np.array([0, 1, 0]), "tb@high_sensitivity": np.array([1, 1, 1])}
    path = tmp_path / "predictions.csv"
    write_predictions(
        path, ["a", "b", "c"], {"tb": probabilities}, {"tb": labels}, class_names={"tb": ["normal", "tuberculosis"]},
        decisions=decided,
    )  # fmt: skip
    rows = [line.split(",") for line in path.read_text().splitlines()]
    assert rows[0] == ["id", "tb", "tb_pred", "tb_pred_class", "tb_prob_0", "tb_prob_1", *decided]
    assert [row[1:4] for row in rows[1:]] == [
        ["0", "0", "normal"],
        ["", "1", "tuberculosis"],
        ["1", "1", "tuberculosis"],
    ]
    assert [row[-2:] for row in rows[1:]] == [["0", "1"], ["1", "1"], ["0", "1"]]
    _, _, read = read_predictions(path)
    assert read["tb"].tolist() == [0, -1, 1]


def test_a_task_and_its_questions_are_evaluated_on_the_images_labelled_for_it() -> None:
    dr, dr_labels = random_predictions(80, 5, seed=4)
    dme, dme_labels = random_predictions(80, 3, seed=5)
    masked = dme_labels.copy()
    masked[::4] = -1
    groups = np.array([f"patient{i // 2}" for i in range(80)])
    options = {"binary_views": {"dme_present": ("dme", 1)}, "n_resamples": 50, "groups": groups}
    report = evaluate_predictions({"dr": dr, "dme": dme}, {"dr": dr_labels, "dme": masked}, **options)
    kept = masked >= 0
    alone = evaluate_predictions({"dme": dme[kept]}, {"dme": dme_labels[kept]}, **options | {"groups": groups[kept]})
    assert report["dme"] == alone["dme"] and report["dme_present"] == alone["dme_present"]
    assert report["dme"]["n"]["value"] == 60 and report["dr"]["n"]["value"] == 80 and report["n"] == 80
    correct = (dr.argmax(1) == dr_labels) & (dme.argmax(1) == dme_labels)
    assert report["joint_accuracy"]["value"] == pytest.approx(correct[kept].mean())


def test_the_report_names_the_classes_and_weights_kappa_by_order(tmp_path: Path) -> None:
    probabilities, labels = random_predictions(100, 3, seed=6)
    names = {"diagnosis": ["covid", "normal", "pneumonia"]}
    nominal = evaluate_predictions(
        {"diagnosis": probabilities}, {"diagnosis": labels}, class_names=names, n_resamples=20
    )
    graded = evaluate_predictions(
        {"diagnosis": probabilities}, {"diagnosis": labels}, ordinal_tasks=["diagnosis"], n_resamples=20
    )
    assert nominal["class_names"] == names and graded["class_names"] == {"diagnosis": ["0", "1", "2"]}
    assert nominal["ordinal_tasks"] == [] and graded["ordinal_tasks"] == ["diagnosis"]
    assert nominal["diagnosis"]["kappa"]["value"] != pytest.approx(graded["diagnosis"]["kappa"]["value"])
    write_metrics(tmp_path / "metrics.json", nominal)
    assert json.loads((tmp_path / "metrics.json").read_text())["class_names"] == names
