"""Root's writes into folders another user owns never follow a link or touch a stranger's file."""

from __future__ import annotations

import os
from pathlib import Path, PurePath

import pytest

from acct2crm.errors import StackError
from devstack import safe_fs


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "precious"
    path.write_text("keep me\n")
    return path


def test_a_file_written_through_a_final_symlink_is_refused(tmp_path: Path, target: Path) -> None:
    (tmp_path / "cluster").mkdir()
    (tmp_path / "cluster" / "pg_hba.conf").symlink_to(target)

    with pytest.raises(StackError, match="symlink"):
        safe_fs.write_file(tmp_path, PurePath("cluster/pg_hba.conf"), "overwritten")

    assert target.read_text() == "keep me\n"


def test_a_file_written_through_a_symlinked_folder_is_refused(tmp_path: Path, target: Path) -> None:
    (tmp_path / "cluster").symlink_to(target.parent)

    with pytest.raises(StackError, match="symlink"):
        safe_fs.write_file(tmp_path, PurePath("cluster/precious"), "overwritten")

    assert target.read_text() == "keep me\n"


def test_a_file_with_another_hard_link_is_refused(tmp_path: Path, target: Path) -> None:
    os.link(target, tmp_path / "linked")

    with pytest.raises(StackError, match="hard links"):
        safe_fs.write_file(tmp_path, PurePath("linked"), "overwritten")

    assert target.read_text() == "keep me\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder away needs root")
def test_a_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    stranger = tmp_path / "postgres"
    stranger.mkdir()
    os.chown(stranger, 54321, 54321)

    with pytest.raises(StackError, match="uid 54321"):
        safe_fs.ensure_dir(tmp_path, PurePath("postgres"), owner=(0, 0))

    assert stranger.stat().st_uid == 54321


def test_a_private_root_others_may_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)

    with pytest.raises(StackError, match="others may write"):
        safe_fs.check_private_root(shared)


def test_a_new_file_and_folder_are_private(tmp_path: Path) -> None:
    safe_fs.ensure_dir(tmp_path, PurePath("state"))
    safe_fs.write_file(tmp_path, PurePath("state/secret"), "s3cret")

    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "state" / "secret").stat().st_mode & 0o777 == 0o600
    assert safe_fs.read_file(tmp_path, PurePath("state/secret")) == "s3cret"
