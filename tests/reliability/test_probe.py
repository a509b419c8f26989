"""scripts/probe_hostile.py, the probe of issue 27's classes of hostile input, holds: no traceback, a
non-zero exit where refused, nothing written outside the folders the command was pointed at, and the
disk unchanged on refusal. The cases that train nothing run here; the others are marked slow."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "probe_hostile.py"


def _probe():
    if "probe_hostile" not in sys.modules:  # a dataclass needs its module registered
        spec = importlib.util.spec_from_file_location("probe_hostile", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["probe_hostile"] = module
        spec.loader.exec_module(module)
    return sys.modules["probe_hostile"]


def _runner(cli):
    def run(args: list[str], cwd: Path) -> tuple[int, str, str]:
        proc = cli(*args, cwd=cwd, check=False)
        return proc.returncode, proc.stdout, proc.stderr
    return run


def test_every_class_of_the_issue_is_probed():
    classes = {case.klass for case in _probe().CASES}
    assert classes == {"untrusted folder", "links", "escaping", "silent input", "crash", "reproduce",
                       "unclear refusal"}
    assert len(_probe().CASES) >= 50


def test_the_fast_probe_holds(cli, tmp_path):
    probe = _probe()
    failed = probe.probe([c for c in probe.CASES if c.fast], _runner(cli), tmp_path)
    assert not failed, [(c.klass, c.name, c.problems) for c in failed]


@pytest.mark.slow
def test_the_slow_probe_holds(cli, tmp_path):
    probe = _probe()
    failed = probe.probe([c for c in probe.CASES if not c.fast], _runner(cli), tmp_path)
    assert not failed, [(c.klass, c.name, c.problems) for c in failed]
