"""Every report records the real commit: from git, from the .git files when git is not installed,
or as stated by $EPIR_GIT_COMMIT for a copy of the tree without .git (the GPU machine's)."""

import shutil
import subprocess

import pytest

from epir_core import provenance

SHA = "0123456789abcdef0123456789abcdef01234567"


def _head() -> str | None:
    if shutil.which("git") is None:
        return None
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=provenance.REPO_ROOT, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def test_the_commit_of_this_checkout_with_and_without_git(monkeypatch):
    head = _head()
    if head is None:
        pytest.skip("not a git checkout with git installed")
    assert provenance.git_commit() == (head, "git")
    assert isinstance(provenance.git_dirty(), bool)
    monkeypatch.setenv("PATH", "")  # git is no longer found: the .git files are read instead
    assert provenance.git_commit() == (head, "git-files")
    assert provenance.git_dirty() is None
    assert provenance.versions()["git_commit"] == head


def test_a_copy_without_git_records_only_a_stated_commit(monkeypatch, tmp_path):
    monkeypatch.setattr(provenance, "REPO_ROOT", tmp_path)
    monkeypatch.delenv(provenance.COMMIT_ENV, raising=False)
    assert provenance.git_commit() == (None, None)
    monkeypatch.setenv(provenance.COMMIT_ENV, "HEAD")  # not a commit: ignored
    assert provenance.git_commit() == (None, None)
    monkeypatch.setenv(provenance.COMMIT_ENV, SHA.upper())
    assert provenance.git_commit() == (SHA, "stated")
    versions = provenance.versions()
    assert versions["git_commit"] == SHA and versions["git_commit_from"] == "stated"


def test_commit_read_from_git_files_of_a_worktree_with_packed_refs(tmp_path):
    common = tmp_path / "main" / ".git"
    gitdir = common / "worktrees" / "wt"
    gitdir.mkdir(parents=True)
    (gitdir / "HEAD").write_text("ref: refs/heads/topic\n")
    (gitdir / "commondir").write_text("../..\n")
    (common / "packed-refs").write_text(f"# pack-refs with: peeled\n{SHA} refs/heads/topic\n")
    worktree = tmp_path / "wt"
    worktree.mkdir()
    (worktree / ".git").write_text(f"gitdir: {gitdir}\n")
    assert provenance._commit_from_files(worktree) == SHA
    other = SHA[::-1]
    (common / "refs" / "heads").mkdir(parents=True)
    (common / "refs" / "heads" / "topic").write_text(other + "\n")  # a loose ref wins over the packed one
    assert provenance._commit_from_files(worktree) == other
    (gitdir / "HEAD").write_text(SHA + "\n")  # detached
    assert provenance._commit_from_files(worktree) == SHA
