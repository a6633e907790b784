"""Users' own data end to end through ``main([...])``: a table of PNGs, class folders, DICOM; fit, test, predict."""

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from medcls.cli import main
from medcls.data import TableDataModule
from medcls.data.preprocessing import XRayPreprocessing
from medcls.errors import CheckpointError
from tests.data.own_images import write_class_folders, write_dicom_folders, write_png_table

CONFIGS = Path(__file__).parents[1] / "configs" / "own"
TINY = ["--trainer.max_epochs", "2", "--trainer.enable_progress_bar", "false", "--trainer.log_every_n_steps", "2",
        "--model.init_args.net.init_args.name", "test_resnet", "--data.init_args.preprocessing.init_args.size", "32",
        "--data.input_size", "24", "--data.batch_size", "4", "--data.preprocess_workers", "1",
        "--report.bootstrap_resamples", "50"]  # fmt: skip


def newest_run(experiment: str) -> Path:
    return max(Path("runs", experiment).glob("version_*"), key=lambda p: int(p.name.split("_")[1]))


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture
def chest_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The README's table config on 32 PNG "X-rays" of 16 patients, run from an empty folder."""
    table = write_png_table(tmp_path / "chest", 32)
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    return ["--config", str(CONFIGS / "chest_xray_table.yaml"), *TINY, "--data.table", str(table),
            "--data.root", str(table.parent)]  # fmt: skip


def test_a_table_of_xrays_trains_tests_and_predicts_new_images_by_class_name(chest_table, tmp_path) -> None:
    main(["fit", *chest_table])
    fit_run = newest_run("chest-xray")
    checkpoint = torch.load(fit_run / "checkpoints/best.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["class_names"] == {"diagnosis": ["normal", "tuberculosis"]}
    thresholds = checkpoint["operating_points"]["diagnosis"]
    assert thresholds.keys() == {"youden", "high_sensitivity", "high_specificity"}
    (events,) = fit_run.glob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events), size_guidance={"images": 0})
    accumulator.Reload()
    assert {"train/first_batch", "val/confusion/diagnosis"} <= set(accumulator.Tags()["images"])  # what the net sees
    assert len(accumulator.Images("val/confusion/diagnosis")) == 2  # one per epoch
    splits = read_csv(fit_run / "splits.csv")
    by_patient = {}
    for row in splits:
        by_patient.setdefault(row["group"], set()).add(row["split"])
    assert len(splits) == 32 and all(len(where) == 1 for where in by_patient.values())

    main(["test", *chest_table, "--ckpt_path", "best"])
    test_run = newest_run("chest-xray")
    metrics = json.loads((test_run / "metrics.json").read_text())
    assert metrics["class_names"] == {"diagnosis": ["normal", "tuberculosis"]} and metrics["ordinal_tasks"] == []
    assert {"auc", "kappa", "youden/sensitivity"} <= metrics["diagnosis"].keys()
    tested = read_csv(test_run / "predictions.csv")
    assert {row["diagnosis_pred_class"] for row in tested} <= {"normal", "tuberculosis"}
    assert {"diagnosis@youden", "diagnosis@high_sensitivity", "diagnosis@high_specificity"} <= tested[0].keys()

    new = write_png_table(tmp_path / "new", 6)
    main(["predict", "--ckpt_path", str(fit_run / "checkpoints/best.ckpt"), "--trainer.enable_progress_bar", "false",
          "--data.predict_images", str(new.parent / "images")])  # fmt: skip
    predict_run = max(Path("runs").glob("*/version_*"), key=lambda p: p.stat().st_mtime)
    predicted = read_csv(predict_run / "predictions.csv")
    assert [row["id"] for row in predicted] == [f"xr{i:03d}.png" for i in range(6)]
    assert "diagnosis" not in predicted[0]
    for row in predicted:
        p_tuberculosis = float(np.float32(row["diagnosis_prob_1"]))  # the float32 the decision was made on
        assert row["diagnosis_pred_class"] == ("tuberculosis" if p_tuberculosis > 0.5 else "normal")
        for point, threshold in thresholds.items():
            decided = p_tuberculosis >= threshold if math.isfinite(threshold) else False
            assert row[f"diagnosis@{point}"] == str(int(decided))


def test_a_checkpoint_is_tested_on_other_data_of_the_same_classes_and_refused_on_other_classes(
    chest_table, tmp_path
) -> None:
    main(["fit", *chest_table, "--trainer.max_epochs", "1"])
    best = str(newest_run("chest-xray") / "checkpoints/best.ckpt")
    other_hospital = write_class_folders(tmp_path / "other", 20)
    folder = ["--data", "medcls.data.FolderDataModule", "--data.task", "diagnosis", "--data.preprocessing",
              "XRayPreprocessing", "--data.preprocessing.size", "32", "--data.input_size", "24",
              "--data.preprocess_workers", "1", "--trainer.enable_progress_bar", "false",
              "--report.bootstrap_resamples", "20"]  # fmt: skip
    main(["test", "--ckpt_path", best, *folder, "--data.root", str(other_hospital)])
    metrics = json.loads(
        (max(Path("runs").glob("*/version_*"), key=lambda p: p.stat().st_mtime) / "metrics.json").read_text()
    )
    assert metrics["class_names"] == {"diagnosis": ["normal", "tuberculosis"]} and metrics["n"] == 4

    renamed = write_class_folders(tmp_path / "renamed", 20, classes=("healthy", "tb"))
    runs_before = sorted(Path("runs").rglob("*"))
    with pytest.raises(CheckpointError, match=r"trained on the classes .*'normal', 'tuberculosis'.*'healthy', 'tb'"):
        main(["test", "--ckpt_path", best, *folder, "--data.root", str(renamed)])
    assert sorted(Path("runs").rglob("*")) == runs_before  # refused before any run folder was claimed


def test_dicom_chest_xrays_in_class_folders_train_and_predict(tmp_path: Path, monkeypatch) -> None:
    root = write_dicom_folders(tmp_path / "cxr", 20)
    monkeypatch.chdir(tmp_path)
    dicom = ["--config", str(CONFIGS / "dicom_chest_xray.yaml"), *TINY, "--trainer.max_epochs", "1",
             "--data.root", str(root), "--data.class_names", "[normal, tuberculosis]",
             "--data.num_workers", "0"]  # fmt: skip
    main(["fit", *dicom])
    main(["predict", *dicom, "--ckpt_path", "best", "--data.predict_images", str(root / "normal")])
    predicted = read_csv(newest_run("cxr-dicom") / "predictions.csv")
    assert [row["id"] for row in predicted] == sorted(p.name for p in (root / "normal").iterdir())
    assert {"finding_prob_1", "finding@youden"} <= predicted[0].keys()


def test_the_readmes_example_table_reads_as_the_readme_says(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Your own data", 1)[1]
    table_text = re.search(r"```text\n(.*?)```", section, re.S).group(1)
    data = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))["data"]
    assert data["class_path"] == "medcls.data.TableDataModule"
    root = tmp_path / "data/chest"
    for line in table_text.splitlines()[1:]:
        image = root / line.split(",")[0]
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (40, 32), 128).save(image.with_suffix(".png"))
    (root / "labels.csv").write_text(table_text)
    settings = data["init_args"] | {"table": root / "labels.csv", "root": root, "cache_dir": tmp_path / "cache"}
    preprocessing = settings.pop("preprocessing")
    assert preprocessing["class_path"] == "medcls.data.preprocessing.XRayPreprocessing"
    module = TableDataModule(**settings, preprocessing=XRayPreprocessing(**preprocessing["init_args"]))
    splits = module.split_records()
    assert {name: len(records) for name, records in splits.items()} == {"train": 3, "val": 2, "test": 3}
    assert module.class_names == {"diagnosis": ["normal", "tuberculosis"]} and module.input_shape == (1, 224, 224)
