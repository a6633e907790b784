"""Running the project's scripts as their users do, inside the test process."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parents[1] / "scripts"


def run_script(name: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``scripts/<name>`` with ``args`` as its command line."""
    monkeypatch.setattr(sys, "argv", [name, *args])
    runpy.run_path(str(SCRIPTS / name), run_name="__main__")
