"""Learning-rate tuning: the lecture's random search over short fits, and Lightning's range test."""

from medcls.tuning.range_test import RangeTest, lr_range_test, save_range_test
from medcls.tuning.search import (
    LECTURE_LR_RANGE,
    LR_OPTION,
    WEIGHT_DECAY_OPTION,
    LogUniform,
    Trial,
    TrialResult,
    markdown_table,
    plot_search,
    rank,
    read_results,
    run_search,
    run_trial,
    sample_trials,
    write_results,
)

__all__ = [
    "LECTURE_LR_RANGE",
    "LR_OPTION",
    "WEIGHT_DECAY_OPTION",
    "LogUniform",
    "RangeTest",
    "Trial",
    "TrialResult",
    "lr_range_test",
    "markdown_table",
    "plot_search",
    "rank",
    "read_results",
    "run_search",
    "run_trial",
    "sample_trials",
    "save_range_test",
    "write_results",
]
