"""Code 128 barcodes as inline SVG, for a register's scanner to read off a phone or a print-out.

python-barcode encodes the text (code sets, the check symbol, the stop pattern) into its
modules; we draw them ourselves as one SVG path, because the library's own SVG writer styles
every bar with a `style` attribute, which the pages' Content-Security-Policy forbids. Each
side keeps a quiet zone of ten modules (ISO/IEC 15417), drawn white, so the barcode scans on
any background. The SVG is drawn two CSS pixels a module wide and shrinks to fit a narrow
screen (page.css); bars are one path with a `fill` attribute, no script, no style.
"""

from __future__ import annotations

import re

from barcode import Code128
from markupsafe import Markup, escape

QUIET_ZONE = 10  # modules of white on each side
HEIGHT = 56  # modules: about a quarter of a reward code's width, plenty for a hand scanner
PIXELS_PER_MODULE = 2
_BARS = re.compile("1+")


def modules(text: str) -> str:
    """The barcode's modules, left to right: '1' a dark one, '0' a light one."""
    (pattern,) = Code128(text).build()
    return pattern


def code128_svg(text: str, *, label: str) -> Markup:
    """`text` as a Code 128 barcode: an `<svg>` element named `label` for assistive technology."""
    pattern = modules(text)
    width = len(pattern) + 2 * QUIET_ZONE
    bars = "".join(f"M{QUIET_ZONE + bar.start()} 0h{len(bar.group())}v{HEIGHT}h-{len(bar.group())}z"
                   for bar in _BARS.finditer(pattern))
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="barcode" role="img" aria-label="{escape(label)}" '
        f'viewBox="0 0 {width} {HEIGHT}" width="{width * PIXELS_PER_MODULE}" height="{HEIGHT * PIXELS_PER_MODULE}">'
        f'<rect width="{width}" height="{HEIGHT}" fill="#fff"/><path d="{bars}" fill="#000"/></svg>'
    )
