import csv
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from medcls.errors import TrainingError, TuningError
from medcls.tuning import (
    LECTURE_LR_RANGE,
    LR_OPTION,
    LogUniform,
    Trial,
    TrialResult,
    markdown_table,
    plot_search,
    rank,
    read_results,
    run_search,
    sample_trials,
)
from tests.scripts import run_script

TUTORIAL = Path(__file__).parents[2] / "configs/mnist/tutorial.yaml"


def test_the_lecture_range_is_sampled_log_uniformly_and_reproducibly() -> None:
    logs = np.log([LogUniform(*LECTURE_LR_RANGE).sample(np.random.default_rng(seed)) for seed in range(4000)])
    assert -5 <= logs.min() < -4.99 and -0.01 < logs.max() <= 0
    assert logs.mean() == pytest.approx(-2.5, abs=0.1)
    # Log-uniform: each unit of x = log(lr) gets a fifth of the samples (a uniform lr would put 99 % in [e^-1, 1]).
    assert np.histogram(logs, bins=5, range=(-5, 0))[0] / len(logs) == pytest.approx([0.2] * 5, abs=0.03)

    lr, decay = LogUniform(1e-4, 1e-1), LogUniform(1e-6, 1e-3)
    trials = sample_trials(10, lr, decay, seed=7)
    assert trials == sample_trials(10, lr, decay, seed=7) != sample_trials(10, lr, decay, seed=8)
    assert sample_trials(4, lr, decay, seed=7) == trials[:4]  # more trials extend a search
    assert all(1e-4 <= t.lr <= 1e-1 and 1e-6 <= t.weight_decay <= 1e-3 for t in trials)
    assert len({t.lr for t in trials}) == 10 and [t.index for t in trials] == list(range(10))
    assert all(t.weight_decay is None for t in sample_trials(3, lr, seed=7))
    assert Trial(2, 0.1, 0.001).options() == [LR_OPTION, "0.1", "--model.init_args.optimizer.init_args.weight_decay",
                                              "0.001"]  # fmt: skip


@pytest.mark.parametrize(
    "low, high", [(1.0, 0.1), (0.1, 0.1), (0.0, 1.0), (-1.0, 1.0), (math.nan, 1.0), (1e-3, math.inf)]
)
def test_an_empty_or_non_positive_range_is_refused(low: float, high: float) -> None:
    with pytest.raises(TuningError, match=r"--lr-range needs 0 < low < high"):
        LogUniform(low, high, name="--lr-range")


def test_the_scripts_refuse_bad_ranges_with_one_message(tmp_path: Path, monkeypatch, capsys) -> None:
    for script, options in [("lr_search.py", ["--weight-decay-range", "1e-2", "1e-4"]),
                            ("lr_search.py", ["--num-trials", "0"]),
                            ("lr_find.py", ["--min-lr", "1", "--max-lr", "0.1"])]:  # fmt: skip
        with pytest.raises(SystemExit) as exit_:
            run_script(script, ["--config", str(TUTORIAL), "--out", str(tmp_path), *options], monkeypatch)
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert exit_.value.code == 2 and ("needs 0 < low < high" in error or "at least one trial" in error), error
    assert not list(tmp_path.iterdir())


def fake_medcls(ends: list[tuple[float | None, float]], calls: list[list[str]]):
    """A stand-in for ``medcls fit`` whose trials end with the given (best score, final validation loss)."""

    def medcls(args: list[str]) -> SimpleNamespace:
        calls.append(args)
        score, loss = ends[len(calls) - 1]
        if not math.isfinite(loss):  # as the Classifier stops a diverging fit
            raise TrainingError(f"the validation loss is {loss}")
        checkpoint = SimpleNamespace(best_model_score=None if score is None else torch.tensor(score),
                                     monitor="val/digit/auc", mode="max")  # fmt: skip
        metrics = {"val/loss": torch.tensor(loss), "val/digit/auc": torch.tensor(score or 0.0)}
        save_dir, name = (args[args.index(f"--trainer.logger.init_args.{key}") + 1] for key in ("save_dir", "name"))
        trainer = SimpleNamespace(
            checkpoint_callback=checkpoint, callback_metrics=metrics, log_dir=f"{save_dir}/{name}/v0"
        )
        return SimpleNamespace(trainer=trainer)

    return medcls


def test_diverged_trials_are_recorded_as_failed_and_ranked_last(tmp_path: Path) -> None:
    calls: list[list[str]] = []
    # A diverging fit stops with a TrainingError; a run that never validated has no score at all.
    ends = [(0.7, 1.0), (-math.inf, math.nan), (0.9, 0.5), (None, 2.0), (0.95, math.inf)]
    medcls = fake_medcls(ends, calls)
    trials = sample_trials(5, LogUniform(1e-3, 1.0), seed=0)
    results = run_search(medcls, ["--config", "c.yaml"], trials, tmp_path)
    assert [args[0] for args in calls] == ["fit"] * 5 and calls[0][1:3] == ["--config", "c.yaml"]
    assert [float(args[args.index(LR_OPTION) + 1]) for args in calls] == [t.lr for t in trials]
    assert [r.score for r in results] == [pytest.approx(0.7), None, pytest.approx(0.9), None, None]
    with open(tmp_path / "trials.csv") as file:
        statuses = [row["status"] for row in csv.DictReader(file)]
    assert statuses == ["ok", "diverged: the validation loss is nan", "ok", "no finite val/digit/auc",
                        "diverged: the validation loss is inf"]  # fmt: skip
    assert read_results(tmp_path / "trials.csv") == results

    ranked = rank(results)
    assert [r.trial.index for r in ranked] == [2, 0, 1, 3, 4]  # higher is better in mode max; failures last
    table = markdown_table(ranked).splitlines()
    assert table[0] == "| rank | trial | lr | weight decay | val/digit/auc (max) | run |"
    assert table[2].startswith("| 1 | 2 |") and table[4].startswith("| - | 1 |")
    assert "| failed (diverged: the validation loss is nan) |" in table[4]
    ax = plot_search(ranked).axes[0]
    low, high = ax.get_xlim()
    assert ax.get_xscale() == "log" and low < min(t.lr for t in trials) and max(t.lr for t in trials) < high

    with pytest.raises(TuningError, match="the seed or a range changed"):
        run_search(medcls, ["--config", "c.yaml"], sample_trials(5, LogUniform(1e-3, 1.0), seed=1), tmp_path)
    with pytest.raises(TuningError, match="different metrics"):
        rank([*results, TrialResult(Trial(9, 0.1), "val/loss", "min", 0.5, "trial009/v0")])


def test_a_search_on_tiny_mnist_ranks_the_trials_and_resumes(tutorial: list[str], tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "search"
    options = [*tutorial, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--out", str(out),
               "--num-trials", "3", "--weight-decay-range", "1e-5", "1e-2", "--seed", "3"]  # fmt: skip
    run_script("lr_search.py", options, monkeypatch)
    results = read_results(out / "trials.csv")
    assert len(results) == 3 and not any(r.failed for r in results)
    assert {r.monitor for r in results} == {"val/loss"} and {r.mode for r in results} == {"min"}
    for result in results:  # the drawn hyper-parameters are the ones the trial's optimizer trained with
        assert result.run == f"trial{result.trial.index:03d}/version_0"
        checkpoint = torch.load(out / result.run / "checkpoints/last.ckpt", weights_only=True)
        (group,) = checkpoint["optimizer_states"][0]["param_groups"]
        assert group["lr"] == pytest.approx(result.trial.lr, rel=1e-12)
        assert group["weight_decay"] == pytest.approx(result.trial.weight_decay, rel=1e-12)
        assert checkpoint["callbacks"][next(k for k in checkpoint["callbacks"] if "ModelCheckpoint" in k)][
            "best_model_score"
        ] == pytest.approx(result.score)
    by_score = sorted(results, key=lambda r: r.score)
    ranking = (out / "ranking.md").read_text().splitlines()[2:]
    assert [int(line.split("|")[2]) for line in ranking] == [r.trial.index for r in by_score]  # lowest loss first
    assert (out / "lr_search.png").stat().st_size > 0

    # Interrupted after two trials: a rerun fits only the third, into a new run of its experiment.
    (out / "trials.csv").write_text("".join((out / "trials.csv").read_text().splitlines(keepends=True)[:3]))
    run_script("lr_search.py", options, monkeypatch)
    assert read_results(out / "trials.csv")[:2] == results[:2]
    assert read_results(out / "trials.csv")[2].run == "trial002/version_1"
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("trial*/version_*")) == [
        "trial000/version_0", "trial001/version_0", "trial002/version_0", "trial002/version_1"]  # fmt: skip

    def no_fit(args: list[str]) -> None:
        raise AssertionError(f"a finished search fitted again: {args}")

    monkeypatch.setattr("medcls.cli.main", no_fit)
    run_script("lr_search.py", options, monkeypatch)  # every trial done: it only ranks
    assert len(read_results(out / "trials.csv")) == 3


def test_a_real_diverging_trial_is_recorded_as_failed_and_leaves_no_run(tutorial: list[str], tmp_path: Path,
                                                                         monkeypatch) -> None:  # fmt: skip
    out = tmp_path / "search"
    options = [*tutorial, "--trainer.limit_train_batches", "2", "--out", str(out), "--num-trials", "1",
               "--lr-range", "1e9", "1e10"]  # fmt: skip
    run_script("lr_search.py", options, monkeypatch)
    (result,) = read_results(out / "trials.csv")
    assert result.failed and result.status.startswith("diverged: ") and "NaN or infinite" in result.status
    assert result.run == "trial000" and not (out / "trial000").exists()  # no run folder of NaN weights
    assert "| failed (diverged: " in (out / "ranking.md").read_text()
