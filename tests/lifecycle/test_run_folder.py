"""lossbench.lifecycle.run_folder: what may be written in a run folder, looked at while others write."""

from __future__ import annotations

import os

from lossbench.lifecycle import run_folder
from lossbench.lifecycle.run_folder import run_folder_problem


def test_an_entry_renamed_away_between_listing_and_looking_is_no_problem(tmp_path, monkeypatch):
    """Another run's atomic write renames its temporary file while this one looks at the folder
    (two sweeps into one folder, the second before the lock): the folder is fine, no FileNotFoundError.
    Seen once in CI as a sweep that stopped on `.hydra/.overrides.yaml.<random>.tmp`."""
    hydra = tmp_path / ".hydra"
    hydra.mkdir()
    (hydra / "config.yaml").write_text("a: 1\n")
    tmp = hydra / ".overrides.yaml.9t85lvax.tmp"
    tmp.write_text("[]\n")
    listed = []
    real_scandir = os.scandir

    def scandir_then_rename(path):
        entries = list(real_scandir(path))
        if os.fspath(path) == str(hydra):
            os.replace(tmp, hydra / "overrides.yaml")  # after the listing, before the look
            listed.extend(e.name for e in entries)
        return iter(entries)

    monkeypatch.setattr(run_folder.os, "scandir", scandir_then_rename)
    assert run_folder_problem(tmp_path) is None
    assert tmp.name in listed  # the race happened: the listing held the name that was gone


def test_a_link_in_the_folder_is_still_refused(tmp_path):
    (tmp_path / "summary.json").symlink_to(tmp_path / "elsewhere.json")
    problem = run_folder_problem(tmp_path, ("summary.json",))
    assert problem is not None and "symbolic link, summary.json ->" in problem and "elsewhere.json" in problem
