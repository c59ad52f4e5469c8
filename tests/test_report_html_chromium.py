"""End to end: the report's HTML page for counsel, loaded in headless Chromium, draws its chart.

Debian's `chromium` opens the page the API served (saved to a file, as a compliance
officer saves it to print) twice: once to dump the DOM it built, once to take a
screenshot at 1280 px, whose pixels must hold the bars in their colour. The screenshot
is kept in tests/artifacts/ (not committed) for a person to look at. Under CI the browser
is installed by .ci/run, and its absence fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from incentives.render import BAR_COLOUR

if TYPE_CHECKING:
    from tests.reports_support import People, Program

pytest_plugins = ("tests.reports_support",)  # the private database and its hand-built programs

IN_CI = bool(os.environ.get("CI"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]
WIDTH, HEIGHT = 1280, 5000  # the whole page, down to the sign-off lines
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture
def browser() -> str:
    """Chromium's path; listed first, it fails (CI) or skips before anything is built."""
    return chromium()


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    message = "headless Chromium is not installed (apt-get install -y chromium)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def browse(browser: str, page: Path, profile: Path, *mode: str) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}", *mode,
         page.as_uri()],
        capture_output=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done


def png_pixels(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """Width, height, bytes per pixel and the unfiltered rows of an 8-bit RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat.append(chunk)
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows, previous = [], bytes(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=False))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = previous[i], previous[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        previous = rows[-1]
    return width, height, bpp, rows


def count_pixels(row: bytes, pixel: bytes, bpp: int) -> int:
    return sum(1 for x in range(0, len(row), bpp) if row[x:x + bpp] == pixel)


async def test_report_page_draws_its_chart_in_chromium(browser: str, program: Program,
                                                       four_members: People, tmp_path: Path):
    response = await program.report(format="html")
    assert response.status_code == 200
    page = tmp_path / "incentive-value-2025.html"
    page.write_bytes(response.content)

    dom = browse(browser, page, tmp_path / "profile-dom", "--dump-dom").stdout.decode()
    assert "<svg" in dom and 'class="distribution"' in dom
    bars = re.findall(r'<rect class="bar" [^>]*height="([0-9.]+)"', dom)
    assert len(bars) == 3  # $0 (2 members), $10 (1), $20 (1)
    assert sorted(float(h) for h in bars) == [101.0, 101.0, 202.0]
    assert "$7.50" in dom
    for words in ("Good-faith estimate", "The notice paragraph", "Assumptions and limitations", "Warnings",
                  "Personal information the program uses", "Prepared by", "Approved by counsel"):
        assert words in dom, words

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "counsel-page-1280.png"
    browse(browser, page, tmp_path / "profile-shot", f"--screenshot={shot}")
    width, height, bpp, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    colour = tuple(int(BAR_COLOUR[i:i + 2], 16) for i in (1, 3, 5))
    painted = sum(count_pixels(row, bytes(colour) + (b"\xff" if bpp == 4 else b""), bpp) for row in rows)
    # three bars 174 px wide, 202 + 101 + 101 px high: about 70,000 pixels of the bar colour
    assert painted > 55_000, painted
    blank = sum(1 for row in rows if row == rows[0] and len(set(row)) == 1)
    assert blank < height, "the screenshot is blank"
