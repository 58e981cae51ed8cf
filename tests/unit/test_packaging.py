"""The product stands apart from its workbench and ships what it reads.

An installed wheel of the product (the repository's root distribution) holds
its schemas and connector templates and none of the workbench (``devstack``,
``refcrm``), and works from any working directory. The product's code never
imports the workbench, and nothing in the repository points outside it.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PRODUCT = REPO / "streams" / "acct2crm"
WORKBENCH_PACKAGES = ("devstack", "refcrm")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", str(REPO), "-w", str(out)],
        check=True,
        capture_output=True,
    )
    (found,) = out.glob("acct2crm-*.whl")
    return found


def test_wheel_carries_the_assets_and_not_the_workbench(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    schemas = sorted((REPO / "schemas").glob("*.avsc"))
    assert schemas
    for schema in schemas:
        assert f"acct2crm/assets/schemas/{schema.name}" in names
    assert "acct2crm/assets/connectors/accounting-customer.json" in names
    top_level = {name.split("/")[0] for name in names}
    assert not top_level & set(WORKBENCH_PACKAGES), top_level


def test_installed_wheel_reads_its_data_from_any_directory(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import acct2crm\n"
        "assert acct2crm.__file__.startswith(sys.argv[1]), acct2crm.__file__\n"
        "from acct2crm.records.avro import avro_type\n"
        "from acct2crm.connect.config import load\n"
        "from acct2crm.settings import Settings\n"
        "for name in ('command', 'result', 'dead_letter', 'crm_record', 'position',"
        " 'table_offset'):\n"
        "    avro_type(name)\n"
        "print(','.join(d.name for d in load(Settings())))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(site)],
        cwd=elsewhere,
        # an empty state folder: no tenants file from the test session's stack
        env={**os.environ, "ACCT2CRM_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "acct2crm-accounting-customer"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_product_never_imports_the_workbench() -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(
            module
            for module in _imported_modules(path)
            if module.split(".")[0] in WORKBENCH_PACKAGES
        )
        for path in PRODUCT.rglob("*.py")
    }
    assert {path: mods for path, mods in offenders.items() if mods} == {}


def test_nothing_in_the_repository_points_outside_it() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    outside = ("../shared", "SPEC.md", "DESIGN.md", "SPEC section", "SPEC §")
    hits = []
    for name in tracked:
        path = REPO / name
        if path == Path(__file__).resolve():
            continue
        if path.is_symlink() or not path.is_file() or path.suffix in (".png", ".jpg"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        hits += [f"{name}: {word}" for word in outside if word in text]
    assert hits == []
