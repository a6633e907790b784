"""Write a synthetic fundus data set in the IDRiD, Messidor, EyePACS, APTOS 2019 or Messidor-2 layout.

Examples:
    python scripts/make_synthetic_fundus.py idrid data/synthetic --size 4288x2848 --train 413 --test 103
    python scripts/make_synthetic_fundus.py messidor data/synthetic --size 1440x960 --per-base 100
    python scripts/make_synthetic_fundus.py eyepacs data/synthetic --train 400 --test 100
    python scripts/make_synthetic_fundus.py aptos data/synthetic --train 400
    python scripts/make_synthetic_fundus.py messidor2 data/synthetic --exams 100
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from medcls.cli import console
from medcls.synthetic import (
    write_aptos_tree,
    write_eyepacs_tree,
    write_idrid_tree,
    write_messidor2_tree,
    write_messidor_tree,
)


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 4288x2848; got {text!r}") from None
    if width < 16 or height < 16:
        raise argparse.ArgumentTypeError(f"image size {text} is too small (16x16 at least)")
    return width, height


def _whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` (to ``high``)."""
    allowed = f"at least {low}" if high is None else f"from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number {allowed}; got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected a whole number {allowed}; got {value}")
        return value

    return parse


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("layout", choices=("idrid", "messidor", "eyepacs", "aptos", "messidor2"))
    parser.add_argument("out", type=Path, help="folder to hold the data set's folder (e.g. 'B. Disease Grading')")
    parser.add_argument(
        "--size",
        type=_size,
        help="WIDTHxHEIGHT (default 512x340 for IDRiD and EyePACS, 512x384 for APTOS, 480x320 for Messidor and "
        "Messidor-2)",
    )
    parser.add_argument("--train", type=_whole_number(1), default=40, help="IDRiD, EyePACS or APTOS training images")
    parser.add_argument(
        "--test",
        type=_whole_number(0),
        default=12,
        help="IDRiD (at least 1) or EyePACS (0: no test folder) test images",
    )
    parser.add_argument(
        "--per-base", type=_whole_number(1), default=5, help="Messidor images per sub-base (12 sub-bases)"
    )
    parser.add_argument("--exams", type=_whole_number(1), default=20, help="Messidor-2 exams (two images each)")
    parser.add_argument("--seed", type=_whole_number(0), default=0)
    parser.add_argument("--format", choices=("xls", "xlsx", "csv"), default="xls", help="Messidor sheet format")
    parser.add_argument("--quality", type=_whole_number(1, 100), default=90, help="IDRiD JPEG quality")
    args = parser.parse_args(argv)
    common = {"seed": args.seed} | ({} if args.size is None else {"size": args.size})
    if args.layout == "idrid":
        if args.test < 1:
            parser.error("--test: IDRiD needs at least 1 test image")
        tree = write_idrid_tree(args.out, train=args.train, test=args.test, quality=args.quality, **common)
    elif args.layout == "messidor":
        tree = write_messidor_tree(args.out, per_base=args.per_base, fmt=args.format, **common)
    elif args.layout == "eyepacs":
        tree = write_eyepacs_tree(args.out, train=args.train, test=args.test, **common)
    elif args.layout == "aptos":
        tree = write_aptos_tree(args.out, train=args.train, **common)
    else:
        tree = write_messidor2_tree(args.out, exams=args.exams, **common)
    print(tree)
    return tree


if __name__ == "__main__":
    with console("make_synthetic_fundus.py"):
        main()
