"""Lightning's learning-rate finder (range test) on any medcls config: where does the training loss fall fastest?

    python scripts/lr_find.py --config configs/demo.yaml --out runs/lr_find [--min-lr 1e-6 --max-lr 1] \\
        [--num-training 100]

Trains ``--num-training`` steps with the learning rate rising exponentially from ``--min-lr`` to ``--max-lr``,
then restores the model; any other option goes to the config as in ``medcls fit`` (e.g. ``--data.batch_size 32``).
Writes ``<out>/lr_find.png`` (loss against learning rate, the suggestion marked), ``<out>/lr_find.csv`` (lr, loss
per step) and ``<out>/config.yaml``, and prints the suggested learning rate: the steepest descent of the loss.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from medcls.cli import main as medcls
from medcls.console import console
from medcls.errors import TuningError
from medcls.tuning import LR_OPTION, lr_range_test, save_range_test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="append", required=True, help="config file(s), stacked in order")
    parser.add_argument("--out", type=Path, required=True, help="folder of the plot, the curve and config.yaml")
    parser.add_argument("--min-lr", type=float, default=1e-6, help="the first learning rate")
    parser.add_argument("--max-lr", type=float, default=1.0, help="the last learning rate")
    parser.add_argument("--num-training", type=int, default=100, help="training steps, one learning rate each")
    args, options = parser.parse_known_args()  # anything else configures the model, data and trainer
    config_args = [arg for config in args.config for arg in ("--config", config)] + options
    # The CLI gets its options from us, not from sys.argv, as LightningCLI's warning fears.
    warnings.filterwarnings("ignore", message=r".*args parameter is intended to run from within Python")
    try:
        result = lr_range_test(medcls, config_args, args.out, args.min_lr, args.max_lr, args.num_training)
    except TuningError as error:
        parser.error(str(error))
    save_range_test(result, args.out)
    print(f"wrote {args.out / 'lr_find.png'} and {args.out / 'lr_find.csv'}")
    if result.suggestion is None:
        print(f"no suggestion: {len(result.losses)} steps leave too few finite losses; raise --num-training.")
    else:
        print(f"suggested learning rate: {result.suggestion:.3g}  ({LR_OPTION} {result.suggestion:.3g})")


if __name__ == "__main__":
    with console("lr_find.py"):
        main()
