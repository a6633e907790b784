"""Run every fold of a k-fold config (e.g. Messidor's 10 folds) and summarise them in one table.

    python scripts/cross_validate.py --config configs/messidor/canet.yaml --num-folds 10 --out runs/messidor-canet-cv

Finished folds are skipped, so an interrupted run resumes where it stopped. Writes ``<out>/summary.md`` and
``<out>/summary.json`` (mean, SD and 95 % CI of the mean over folds, per question and metric).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from medcls.cli import main as medcls
from medcls.console import console
from medcls.crossval import markdown_table, run_folds, summarise
from medcls.io import atomic_write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="append", required=True, help="config file(s), stacked in order")
    parser.add_argument("--num-folds", type=int, default=10)
    parser.add_argument("--out", type=Path, required=True, help="folder of the folds' runs and the summary")
    args, options = parser.parse_known_args()  # anything else goes to every 'medcls fit' and 'medcls test'
    config_args = [arg for config in args.config for arg in ("--config", config)] + options
    rows = summarise(run_folds(medcls, config_args, args.num_folds, args.out))
    table = markdown_table(rows)
    atomic_write(args.out / "summary.md", lambda file: file.write(table))
    atomic_write(args.out / "summary.json", lambda file: json.dump(rows, file, indent=2))
    print(table)


if __name__ == "__main__":
    with console("cross_validate.py"):
        main()
