"""Write synthetic tuberculosis chest X-ray sets in the Shenzhen and/or Montgomery County layout.

Examples:
    python scripts/make_synthetic_chest.py both data/tuberculosis --count 100 --size 512
    python scripts/make_synthetic_chest.py shenzhen data/tuberculosis --count 662 --size 3000
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from medcls.cli import console
from medcls.synthetic.chest import MONTGOMERY_MAX_COUNT, write_montgomery_tree, write_shenzhen_tree


def _whole_number(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, at least {low}; got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected a whole number, at least {low}; got {value}")
        return value

    return parse


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("layout", choices=("shenzhen", "montgomery", "both"))
    parser.add_argument("out", type=Path, help="folder to hold ChinaSet_AllFiles and/or MontgomerySet")
    parser.add_argument(
        "--count",
        type=_whole_number(2),
        default=60,
        help=f"radiographs per set (Montgomery: {MONTGOMERY_MAX_COUNT} at most)",
    )
    parser.add_argument(
        "--size", type=_whole_number(16), default=256, help="image side in pixels (Montgomery: the height)"
    )
    parser.add_argument("--no-masks", action="store_true", help="leave out Montgomery's lung masks")
    parser.add_argument("--seed", type=_whole_number(0), default=0)
    args = parser.parse_args(argv)
    if args.layout != "shenzhen" and args.count > MONTGOMERY_MAX_COUNT:
        parser.error(f"--count {args.count}: Montgomery's numbering holds {MONTGOMERY_MAX_COUNT} radiographs at most")
    trees = []
    if args.layout in ("shenzhen", "both"):
        trees.append(write_shenzhen_tree(args.out, args.count, args.size, args.seed))
    if args.layout in ("montgomery", "both"):
        trees.append(write_montgomery_tree(args.out, args.count, args.size, args.seed, masks=not args.no_masks))
    for tree in trees:
        print(tree)
    return trees


if __name__ == "__main__":
    with console("make_synthetic_chest.py"):
        main()
