"""Random search of the learning rate (and weight decay), as the lecture says: log-uniform samples, short fits.

    python scripts/lr_search.py --config configs/demo.yaml --out runs/lr_search --num-trials 10 --trainer.max_epochs 2

Each trial draws the optimizer's learning rate log-uniformly from ``--lr-range`` (default the lecture's
``e^x, x ~ U[-5, 0]``, i.e. [0.0067, 1]) and, with ``--weight-decay-range``, its weight decay, and runs
``medcls fit`` into ``<out>/trial<NNN>``; any other option goes to every fit (keep them short, e.g.
``--trainer.max_epochs 2``). Trials are scored by the best value of ``--checkpoint.monitor`` (default
``val/loss``, ``--checkpoint.mode min``); a trial that diverges is recorded as failed. The draws are seeded
(``--seed``) and every finished trial is recorded in ``<out>/trials.csv``, so an interrupted search resumes
where it stopped, and a rerun with more ``--num-trials`` adds trials. Writes ``<out>/ranking.md`` (printed too)
and ``<out>/lr_search.png``, the validation score against the learning rate.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from medcls.cli import main as medcls
from medcls.console import console
from medcls.errors import TuningError
from medcls.io import atomic_write, save_figure
from medcls.tuning import (
    LECTURE_LR_RANGE,
    LogUniform,
    markdown_table,
    plot_search,
    rank,
    run_search,
    sample_trials,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="append", required=True, help="config file(s), stacked in order")
    parser.add_argument("--out", type=Path, required=True, help="folder of the trials' runs and the results")
    parser.add_argument("--num-trials", type=int, default=10)
    parser.add_argument("--lr-range", type=float, nargs=2, default=LECTURE_LR_RANGE, metavar=("LOW", "HIGH"),
                        help="learning rates, sampled log-uniformly (default: e^-5 to 1)")  # fmt: skip
    parser.add_argument("--weight-decay-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="weight decays, sampled log-uniformly (default: the config's weight decay)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws")
    args, options = parser.parse_known_args()  # anything else goes to every 'medcls fit'
    config_args = [arg for config in args.config for arg in ("--config", config)] + options
    try:
        lr = LogUniform(*args.lr_range, name="--lr-range")
        weight_decay = None
        if args.weight_decay_range is not None:
            weight_decay = LogUniform(*args.weight_decay_range, name="--weight-decay-range")
        trials = sample_trials(args.num_trials, lr, weight_decay, args.seed)
    except TuningError as error:
        parser.error(str(error))
    # The fits get their options from us, not from sys.argv, as LightningCLI's warning fears.
    warnings.filterwarnings("ignore", message=r".*args parameter is intended to run from within Python")
    try:
        ranked = rank(run_search(medcls, config_args, trials, args.out))
    except TuningError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    table = markdown_table(ranked)
    atomic_write(args.out / "ranking.md", lambda file: file.write(table))
    save_figure(plot_search(ranked), args.out / "lr_search.png", dpi=120)
    print(table)


if __name__ == "__main__":
    with console("lr_search.py"):
        main()
