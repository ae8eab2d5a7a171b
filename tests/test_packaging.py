"""The distribution: published as kronos-forecasting (`kronos` on the package index is an
unrelated 2011 project), imported as `kronos`, run as `kronos`; install hints name it; outputs of
the commands are not in the repository."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "kronos-forecasting"


def test_the_distribution_name_is_free_of_the_unrelated_kronos_and_keeps_the_import_and_command():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION
    assert project["scripts"] == {"kronos": "kronos.commands.main:main"}
    assert f"{DISTRIBUTION}[serve]" in project["optional-dependencies"]["test"]
    assert (ROOT / "src" / "kronos" / "__init__.py").is_file()


def test_every_install_hint_names_the_distribution():
    """`pip install kronos` or 'kronos[extra]' would install the unrelated project (or fail)."""
    sources = [*ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md"), *(ROOT / "src").rglob("*.py")]
    sources += [*(ROOT / "scripts").glob("*.py"), *(ROOT / "src" / "kronos" / "serve" / "static").glob("*.*")]
    wrong = re.compile(r"pip install\s+['\"]?kronos(\[|['\"\s]|$)", re.MULTILINE)
    bad = [
        f"{path.relative_to(ROOT)}: {match[0]!r}"
        for path in sources
        for match in wrong.finditer(path.read_text())
    ]
    assert not bad, bad


def test_command_outputs_are_not_in_the_repository():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [
        p for p in tracked if p.startswith("kronos-evaluation/") or p in ("forecast.csv", "forecast.png")
    ]
    ignored = subprocess.run(
        ["git", "check-ignore", "kronos-evaluation/report.md", "forecast.csv", "forecast.png"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert ignored.stdout.split() == ["kronos-evaluation/report.md", "forecast.csv", "forecast.png"]
