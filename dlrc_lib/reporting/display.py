"""Numbers in notebook tables as people read them: rounded, exact zeros as 0, no float noise.

Applied to the kernel's pandas display options by :func:`dlrc_lib.run.paths.open_run`;
it changes what a notebook shows, never the CSV/Markdown tables written to the run.
"""
from __future__ import annotations

import math

import pandas as pd

NOISE = 1e-12  # |x| below this is floating-point noise of a zero (e.g. 5.551115e-17)


def people_number(value: float, decimals: int = 3) -> str:
    """``0`` for zero (and float noise), ``decimals`` decimals otherwise, two significant
    digits for small non-zero values (p-values such as 2.3e-05)."""
    if value is None:
        return ""
    v = float(value)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if abs(v) < NOISE:
        return "0"
    if abs(v) < 0.5 * 10 ** -decimals:
        return f"{v:.2g}"
    text = f"{v:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def use_people_numbers() -> None:
    """Show every float of a DataFrame / Series in this kernel with :func:`people_number`."""
    pd.set_option("display.float_format", people_number)
