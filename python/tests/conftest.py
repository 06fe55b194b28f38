from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


def truth_rows(path: Path) -> dict:
    rows = {}
    for line in path.read_text().splitlines()[1:]:
        r, kind = line.split(",")
        rows[int(r)] = kind
    return rows
