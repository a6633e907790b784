from pathlib import Path

import pytest

from medcls.benchmarks.tutorial import TutorialTimes, time_tutorial
from tests.conftest import write_mnist

TUTORIAL = Path(__file__).parents[2] / "configs/mnist/tutorial.yaml"


def test_the_overhead_is_the_extra_time_per_training_step() -> None:
    times = TutorialTimes(plain=2.0, framework=2.5, steps=250, lightning=2.25)
    assert times.overhead_ms_per_step == pytest.approx(2.0)
    assert times.lightning_ms_per_step == pytest.approx(1.0)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_all_three_ways_train_the_same_steps_and_the_fit_runs_as_a_users_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    root = write_mnist(tmp_path / "mnist", train=5128, test=10)  # the tutorial holds out 5,000: two batches of 64
    times = time_tutorial(TUTORIAL, root, epochs=1, repeats=1)
    assert times.steps == 2 and times.plain > 0 and times.framework > 0 and times.lightning > 0
    # With its progress, as a fit whose output is not a terminal shows it; the runs went to a temporary folder.
    assert "Epoch 0/0: " in capsys.readouterr().out
    assert [path.name for path in tmp_path.iterdir()] == ["mnist"]
