from pathlib import Path

import numpy as np
import pytest
import yaml

from medcls.cli import MedclsCLI, main
from medcls.crossval import markdown_table, run_folds, summarise
from medcls.synthetic import write_messidor_tree
from tests.scripts import run_script


@pytest.fixture
def messidor_config(tmp_path: Path) -> Path:
    tree = write_messidor_tree(tmp_path / "data", per_base=3, size=(160, 106), seed=1)
    demo = yaml.safe_load((Path(__file__).parents[1] / "configs/demo.yaml").read_text())
    demo["trainer"] |= {"max_epochs": 1, "enable_progress_bar": False}
    demo["model"]["init_args"]["net"]["init_args"]["backbone"] = "test_resnet"
    demo["data"] = {
        "class_path": "medcls.data.MessidorDataModule",
        "init_args": {"root": str(tree), "cache_dir": str(tmp_path / "cache"), "image_size": 64, "input_size": 48,
                      "batch_size": 8, "preprocess_workers": 1, "val_size": 0.25},
    }  # fmt: skip
    config = tmp_path / "messidor.yaml"
    config.write_text(yaml.safe_dump(demo))
    return config


def test_every_fold_runs_once_and_the_summary_averages_them(messidor_config: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    calls: list[list[str]] = []

    def medcls(args: list[str]) -> MedclsCLI:
        calls.append(args)
        return main(args)

    out = tmp_path / "cv"
    options = ["--config", str(messidor_config), "--report.bootstrap_resamples", "50"]
    results = run_folds(medcls, options, num_folds=3, out=out)
    assert len(results) == 3 and [args[0] for args in calls] == ["fit", "test"] * 3
    assert sorted(p.name for p in out.glob("fold*.json")) == ["fold0.json", "fold1.json", "fold2.json"]
    tested = [{row["id"] for row in _splits(out, fold) if row["split"] == "test"} for fold in range(3)]
    assert not (tested[0] & tested[1] or tested[0] & tested[2] or tested[1] & tested[2])  # disjoint test folds

    calls.clear()
    assert run_folds(medcls, options, num_folds=3, out=out) == results and not calls  # finished folds are skipped

    rows = {(row["question"], row["metric"]): row for row in summarise(results)}
    auc = rows[("dr", "auc")]
    values = [fold["dr"]["auc"]["value"] for fold in results]
    assert auc["folds"] == 3 and auc["mean"] == pytest.approx(np.mean(values))
    assert auc["sd"] == pytest.approx(np.std(values, ddof=1)) and auc["ci_low"] <= auc["mean"] <= auc["ci_high"]
    assert "| dr | auc | 3 |" in markdown_table(summarise(results))

    # Every fold done: the script only summarises.
    run_script("cross_validate.py", [*options, "--num-folds", "3", "--out", str(out)], monkeypatch)
    assert (out / "summary.md").read_text() == markdown_table(summarise(results))


def _splits(out: Path, fold: int) -> list[dict[str, str]]:
    import csv

    (fit_run, *_) = sorted((out / f"cv-fold{fold}").glob("version_*"))
    with open(fit_run / "splits.csv") as file:
        return list(csv.DictReader(file))
