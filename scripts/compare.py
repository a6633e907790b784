"""Compare models on the same test set: metrics with 95 % CIs and DeLong p-values against a reference.

    python scripts/compare.py runs/a/version_1/predictions.csv runs/b/version_1/predictions.csv \\
        --names canet resnet50 --reference canet --views referable_dr=dr:2 dme_present=dme:1 --out comparison

Writes ``<out>.md`` and ``<out>.csv`` and prints the markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medcls.console import console
from medcls.io import atomic_write
from medcls.metrics.comparison import compare, markdown_table, write_csv


def view(text: str) -> tuple[str, tuple[str, int]]:
    name, definition = text.split("=")
    task, positive_from = definition.split(":")
    return name, (task, int(positive_from))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions", type=Path, nargs="+", help="predictions.csv of 'medcls test' runs")
    parser.add_argument("--names", nargs="+", help="a name per file (default: the files' run folders)")
    parser.add_argument("--reference", help="the model the others' AUCs are tested against (default: the first)")
    parser.add_argument("--views", type=view, nargs="*", default=[], help="binary views, NAME=TASK:LOWEST_POSITIVE")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples per confidence interval")
    parser.add_argument("--out", type=Path, default=Path("comparison"), help="output path without suffix")
    args = parser.parse_args()
    names = args.names or [f"{p.parent.parent.name}/{p.parent.name}" for p in args.predictions]
    if len(names) != len(args.predictions):
        parser.error("give one name per predictions file")
    reference = args.reference or names[0]
    rows = compare(dict(zip(names, args.predictions, strict=True)), reference, dict(args.views), args.resamples)
    table = markdown_table(rows, reference)
    atomic_write(args.out.with_suffix(".md"), lambda file: file.write(table))
    write_csv(args.out.with_suffix(".csv"), rows)
    print(table)


if __name__ == "__main__":
    with console("compare.py"):
        main()
