"""Synthetic stand-ins of the public data sets, for the demo, the tests and the notebooks: no download needed.

Fundus photographs graded for DR and DME by construction (:mod:`~medcls.synthetic.fundus`), in IDRiD's
and Messidor's proportions (:mod:`~medcls.synthetic.labels`), written as IDRiD, Messidor, EyePACS, APTOS 2019
and Messidor-2 distribute them (:mod:`~medcls.synthetic.trees`, with the sheets of
:mod:`~medcls.synthetic.sheets`); printed digits in MNIST's files (:mod:`~medcls.synthetic.digits`).
"""

from medcls.synthetic.digits import synthetic_digits, write_idx, write_synthetic_mnist
from medcls.synthetic.fundus import FundusGeometry, draw_fundus
from medcls.synthetic.labels import (
    IDRID_DME_FREQUENCIES,
    IDRID_DR_FREQUENCIES,
    MESSIDOR_DME_FREQUENCIES,
    MESSIDOR_DR_FREQUENCIES,
    sample_labels,
)
from medcls.synthetic.sheets import sheet_writer, write_csv, write_xls, write_xlsx
from medcls.synthetic.trees import (
    write_aptos_tree,
    write_eyepacs_tree,
    write_idrid_tree,
    write_messidor2_tree,
    write_messidor_tree,
)

__all__ = [
    "IDRID_DME_FREQUENCIES",
    "IDRID_DR_FREQUENCIES",
    "MESSIDOR_DME_FREQUENCIES",
    "MESSIDOR_DR_FREQUENCIES",
    "FundusGeometry",
    "draw_fundus",
    "sample_labels",
    "sheet_writer",
    "synthetic_digits",
    "write_aptos_tree",
    "write_csv",
    "write_eyepacs_tree",
    "write_idx",
    "write_idrid_tree",
    "write_messidor2_tree",
    "write_messidor_tree",
    "write_synthetic_mnist",
    "write_xls",
    "write_xlsx",
]
