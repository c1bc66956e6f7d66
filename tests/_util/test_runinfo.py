"""Provenance: the checkout's commit and the installed versions."""

from kanplatform._util.runinfo import git_sha, versions


def test_versions_name_the_installed_packages():
    found = versions()
    assert {"kanplatform", "torch", "omegaconf"} <= set(found)


def test_git_sha_is_a_commit_or_none_outside_a_checkout(tmp_path):
    sha = git_sha()
    assert sha is None or len(sha.split("-")[0]) == 40
    assert git_sha(tmp_path) is None
