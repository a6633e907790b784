"""The lecture's case studies from their configs, end to end on the synthetic stand-ins of their data sets.

Each config runs as written except for its size: tiny synthetic trees, one epoch, no last.ckpt, and where the
architecture alone would take minutes on a CPU or write checkpoints of hundreds of megabytes (ViT-Large, Inception-v3,
AlexNet) a small net of the same family (a tiny ViT, ResNet-18) at a small input size.
"""

import json
import math
from pathlib import Path

import pytest

from medcls.cli import main
from medcls.synthetic.chest import write_montgomery_tree, write_shenzhen_tree
from medcls.synthetic.trees import write_aptos_tree, write_eyepacs_tree, write_idrid_tree, write_messidor2_tree
from tests.scripts import run_script

CONFIGS = Path(__file__).parents[1] / "configs"
QUICK = ["--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false", "--data.num_workers", "0",
         "--data.preprocess_workers", "1", "--report.bootstrap_resamples", "50",
         "--last_checkpoint.save_top_k", "0"]  # fmt: skip
RESNET18 = ["--model.init_args.net.init_args.name", "resnet18"]


def newest_run(experiment: str) -> Path:
    return max(Path("runs", experiment).glob("version_*"), key=lambda p: int(p.name.split("_")[1]))


def metrics_of(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_gulshan_eyepacs_checkpoint_on_messidor2_gives_the_papers_columns(tmp_path: Path, monkeypatch) -> None:
    eyepacs = write_eyepacs_tree(tmp_path / "eyepacs", train=30, size=(96, 64), seed=1)
    messidor2 = write_messidor2_tree(tmp_path / "messidor-2", exams=8, size=(96, 64), seed=2)
    monkeypatch.chdir(tmp_path)
    small = ["--data.image_size", "64", "--data.input_size", "48", "--data.batch_size", "8", *RESNET18]
    main(["fit", "-c", str(CONFIGS / "eyepacs/gulshan_inception_v3.yaml"), *QUICK, *small, "--data.root", str(eyepacs)])
    best = newest_run("eyepacs-gulshan") / "checkpoints/best.ckpt"
    main(["test", "--ckpt_path", str(best), "--data", "medcls.data.Messidor2DataModule", "--data.root", str(messidor2),
          "--data.select_tasks", "[dr]", "--data.all_as_test", "true", *QUICK, *small])  # fmt: skip
    report = metrics_of(max(Path("runs").glob("*/version_*"), key=lambda p: p.stat().st_mtime))
    assert report["n"] == 16 - 1  # every gradable Messidor-2 image; the ungradable one left out
    referable = report["referable_dr"]
    for column in ("auc", "high_sensitivity/sensitivity", "high_sensitivity/specificity",
                   "high_specificity/sensitivity", "high_specificity/specificity"):  # fmt: skip
        assert {"value", "ci_low", "ci_high"} <= referable[column].keys(), column
    assert report["operating_points"]["referable_dr"].keys() == {"youden", "high_sensitivity", "high_specificity"}


def test_lakhani_two_networks_their_ensemble_and_delong(tmp_path: Path, monkeypatch) -> None:
    write_shenzhen_tree(tmp_path / "tb", 16, size=96, seed=1)
    write_montgomery_tree(tmp_path / "tb", 10, size=96, seed=2)
    monkeypatch.chdir(tmp_path)
    data = ["--data.root", str(tmp_path / "tb"), "--data.batch_size", "8"]
    tested = {}
    for net in ("alexnet", "googlenet"):
        config = [
            "-c",
            str(CONFIGS / f"tuberculosis/{net}.yaml"),
            *QUICK,
            *data,
            *(RESNET18 if net == "alexnet" else []),
        ]
        main(["fit", *config])
        main(["test", *config, "--ckpt_path", "best"])
        tested[net] = newest_run(f"tuberculosis-{net}")
        assert metrics_of(tested[net])["class_names"] == {"tb": ["normal", "tuberculosis"]}
    best = [str(newest_run(f"tuberculosis-{net}").parent / "version_0/checkpoints/best.ckpt") for net in tested]
    main(
        [
            "test",
            "-c",
            str(CONFIGS / "tuberculosis/alexnet.yaml"),
            *QUICK,
            *data,
            "--model",
            "medcls.models.Ensemble",
            "--model.init_args.checkpoints",
            f"[{best[0]}, {best[1]}]",
            "--trainer.logger.init_args.name",
            "tb-ensemble",
        ]
    )
    ensemble = metrics_of(newest_run("tb-ensemble"))
    assert ensemble["n"] == metrics_of(tested["alexnet"])["n"] and math.isfinite(ensemble["tb"]["auc"]["value"])
    run_script(
        "compare.py",
        [
            str(tested["alexnet"] / "predictions.csv"),
            str(tested["googlenet"] / "predictions.csv"),
            "--names",
            "alexnet",
            "googlenet",
            "--out",
            str(tmp_path / "lakhani"),
        ],
        monkeypatch,
    )
    table = (tmp_path / "lakhani.md").read_text()
    assert "googlenet | tb" in table and "p (DeLong)" in table


@pytest.mark.parametrize("study", ["aptos", "idrid", "messidor2"])
def test_retfound_style_fine_tuning_reports_the_macro_auroc(study: str, tmp_path: Path, monkeypatch) -> None:
    writers = {
        "aptos": lambda: write_aptos_tree(tmp_path / "aptos", train=30, size=(96, 64), seed=3),
        "idrid": lambda: write_idrid_tree(tmp_path / "idrid", train=24, test=8, size=(96, 64), seed=3),
        "messidor2": lambda: write_messidor2_tree(tmp_path / "messidor-2", exams=16, size=(96, 64), seed=3),
    }
    root = writers[study]()
    monkeypatch.chdir(tmp_path)
    config = ["-c", str(CONFIGS / f"{study}/retfound_vit_large.yaml"), *QUICK, "--data.root", str(root),
              "--model.init_args.net.init_args.name", "test_vit", "--data.image_size", "64", "--data.input_size",
              "32", "--data.batch_size", "8"]  # fmt: skip
    main(["fit", *config])
    main(["test", *config, "--ckpt_path", "best"])
    report = metrics_of(newest_run(f"{study}-retfound"))
    assert set(report) >= {"dr", "referable_dr"} and "dme" not in report
    assert {"auc", "kappa"} <= report["dr"].keys() and report["ordinal_tasks"] == ["dr"]
    if study == "aptos":  # RETFound's cross-data-set column: trained on APTOS, tested on all of IDRiD
        idrid = write_idrid_tree(tmp_path / "idrid", train=12, test=4, size=(96, 64), seed=4)
        best = newest_run("aptos-retfound").parent / "version_0/checkpoints/best.ckpt"
        main(["test", "--ckpt_path", str(best), "--data", "medcls.data.IDRiDDataModule", "--data.root", str(idrid),
              "--data.select_tasks", "[dr]", "--data.all_as_test", "true", "--data.image_size", "64",
              "--data.input_size", "32", *QUICK])  # fmt: skip
        across = metrics_of(max(Path("runs").glob("*/version_*"), key=lambda p: p.stat().st_mtime))
        assert across["n"] == 16 and across["operating_points"].keys() == report["operating_points"].keys()
