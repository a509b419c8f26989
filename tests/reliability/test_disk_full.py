"""A full disk: one line, failure.json when it fits, no temporary file left behind.

Runs the command on a 1 MiB tmpfs mounted in a private mount namespace (`unshare -m`, as root,
or `unshare -rm` with user namespaces); skipped with the reason where the platform does not allow it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest


def _namespace_prefix(tmp_path) -> list[str]:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        pytest.skip("needs Linux and unshare(1) to mount a small file system")
    probe = tmp_path / "probe"
    probe.mkdir()
    for prefix in (["unshare", "-m"], ["unshare", "-rm"]):
        ok = subprocess.run([*prefix, "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {probe}"],
                            capture_output=True).returncode == 0
        if ok:
            return prefix
    pytest.skip("no permission to mount a tmpfs in a private mount namespace (unshare -m / -rm)")


def test_disk_full_fails_in_one_line_with_failure_json_and_no_temporary_file(h, tmp_path):
    prefix = _namespace_prefix(tmp_path)
    small, copy = tmp_path / "small", tmp_path / "copy"
    small.mkdir()
    # a 512x512 MLP makes a ~2.5 MB checkpoint: the first one cannot fit in 1 MiB
    command = " ".join([
        sys.executable, "-m", "lossbench", "run", f"hydra.run.dir={small}/run", "model.hidden=[512,512]",
        "trainer.epochs=2", "trainer.progress=none",
    ])
    script = (f"mount -t tmpfs -o size=1m tmpfs {small} && {command}; code=$?; "
              f"cp -a {small}/. {copy}/; exit $code")
    proc = subprocess.run([*prefix, "sh", "-c", script], cwd=tmp_path, env=h.ENV, capture_output=True,
                          text=True, timeout=600)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("lossbench:")]
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert len(lines) == 1 and "No space left on device" in lines[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    run = copy / "run"
    failure = json.loads((run / "failure.json").read_text())
    assert failure["status"] == "failed" and "No space left on device" in failure["error"]
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
    assert not (run / "summary.json").exists()


@pytest.mark.parametrize("what", ["report --out", "report --plots", "evaluate --out"])
def test_outputs_on_a_full_disk_are_whole_or_absent(h, cli, tmp_path, what):
    """report's tables and plots and evaluate's JSON on a full file system: one line, exit status 1, and
    no empty or cut file left (each is written to a temporary name, then renamed)."""
    prefix = _namespace_prefix(tmp_path)
    runs = tmp_path / "runs"
    cli("run", f"hydra.run.dir={runs / 'r'}", "trainer.epochs=1", "model.hidden=[8]", "trainer.progress=none",
        cwd=tmp_path)
    small, copy = tmp_path / "small", tmp_path / "copy"
    small.mkdir()
    args = {"report --out": ["report", str(runs), "--out", f"{small}/t.md", "--out", f"{small}/t.tex"],
            "report --plots": ["report", str(runs), "--plots", f"{small}/plots"],
            "evaluate --out": ["evaluate", str(runs / "r"), "--out", f"{small}/e.json"]}[what]
    command = " ".join([sys.executable, "-m", "lossbench", *args])
    fill = f"(head -c 1000000 /dev/zero > {small}/filler; true)"  # the file system is full from the start
    script = (f"mount -t tmpfs -o size=64k tmpfs {small} && {fill} && {command}; code=$?; "
              f"rm -f {small}/filler; cp -a {small}/. {copy}/; exit $code")
    proc = subprocess.run([*prefix, "sh", "-c", script], cwd=tmp_path, env=h.ENV, capture_output=True,
                          text=True, timeout=600)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("lossbench") and " error: " in ln]
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(errors) == 1 and "No space left on device" in errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert [p for p in copy.rglob("*") if p.is_file()] == []
