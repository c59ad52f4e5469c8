"""The repository documents itself: nothing in it points at files outside it, and every
setting the service reads from the environment is explained in docs/operations.md."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = re.compile(r"\.\./shared|SPEC\.md|SPEC §")


def tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in listed.decode().split("\0") if name]


def test_nothing_in_the_repository_points_outside_it() -> None:
    found = []
    for path in tracked_files():
        if path.suffix in (".png", ".ico") or not path.is_file() or path == Path(__file__):
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert not found, "a clone has no ../shared; say it here instead:\n" + "\n".join(found)


def test_every_setting_is_explained_in_docs_operations_md() -> None:
    source = (ROOT / "rewards" / "config.py").read_text()
    names = set(re.findall(r"""(?:environ\.get|getenv|_int|_bool|_float|_str)\(\s*["']([A-Z][A-Z0-9_]*)["']""", source))
    assert {"DATABASE_URL", "REWARDS_DATA_DIR", "REWARDS_PORT"} <= names, names
    operations = (ROOT / "docs" / "operations.md").read_text()
    missing = sorted(name for name in names if f"`{name}`" not in operations)
    assert not missing, f"settings read in rewards/config.py but not explained in docs/operations.md: {missing}"
