import numpy as np

from medcls.benchmarks.report import VIEWS, report_inputs, synthetic_predictions, time_report


def test_the_synthetic_test_set_grades_like_a_good_model_with_two_images_per_patient() -> None:
    inputs = report_inputs(2000, seed=0)
    assert list(inputs.probabilities) == ["dr", "dme"] and inputs.probabilities["dr"].shape == (2000, 5)
    assert np.array_equal(np.bincount(inputs.groups), np.full(1000, 2))
    for task, probabilities in inputs.probabilities.items():
        assert np.allclose(probabilities.sum(1), 1, atol=1e-5)
        accuracy = np.mean(probabilities.argmax(1) == inputs.labels[task])
        assert 0.5 < accuracy < 0.95, task
    assert set(inputs.operating_points) == set(VIEWS)
    assert all(len(points) == 3 for points in inputs.operating_points.values())
    again, _ = synthetic_predictions(2000, seed=0)
    assert np.array_equal(again["dr"], inputs.probabilities["dr"])


def test_each_question_and_the_whole_report_are_timed() -> None:
    times = time_report(400, n_resamples=20)
    assert list(times.questions) == ["dr", "dme", "referable_dr", "dme_present"]
    assert all(seconds > 0 for seconds in times.questions.values()) and times.report > 0
