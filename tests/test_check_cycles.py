"""``tools/check_cycles.py``, run as ``make lint`` runs it, on small packages written here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "check_cycles.py"


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), str(root)], capture_output=True, text=True, check=False
    )


def test_a_cycle_through_a_package_init_fails(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "http/__init__.py": "from pkg.http._client import Client\n",
            "http/_client.py": "from pkg.jobs import RetryLater\nclass Client: ...\n",
            "jobs/__init__.py": "from pkg.jobs.registry import RetryLater\n",
            "jobs/registry.py": "from pkg.http import Client\nclass RetryLater(Exception): ...\n",
        },
    )
    result = _check(root)
    assert result.returncode == 1
    assert (
        "import cycle: pkg.http -> pkg.http._client -> pkg.jobs -> pkg.jobs.registry -> pkg.http"
        in result.stdout
    )


def test_type_checking_and_function_imports_do_not_count(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import b\n",
            "b.py": "from pkg import a\ndef f():\n    from pkg import c\n",
            "c.py": "import pkg.b\n",
            "sub/__init__.py": "from pkg.sub import leaf\n",
            "sub/leaf.py": "from pkg.sub import sibling\n",  # its own package: already running
            "sub/sibling.py": "",
        },
    )
    result = _check(root)
    assert result.returncode == 0, result.stdout
    assert "no import cycles" in result.stdout


def test_relative_imports_are_resolved(tmp_path: Path) -> None:
    root = _package(tmp_path, {"a.py": "from .b import x\n", "b.py": "from . import a\nx = 1\n"})
    result = _check(root)
    assert result.returncode == 1
    assert "pkg.a -> pkg.b -> pkg.a" in result.stdout


def test_the_hub_has_no_import_cycle() -> None:
    result = _check(ROOT / "src" / "switchboard")
    assert result.returncode == 0, result.stdout
