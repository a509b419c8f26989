"""The sweep's closing line and exit status, from its ledger of job outcomes."""

from __future__ import annotations

import json

from lossbench.core import signals
from lossbench.lifecycle.callbacks import tally


def _ledger(tmp_path, outcomes: dict[int, dict]):
    ledger = tmp_path / ".lossbench-sweep-test"
    ledger.mkdir()
    for num, outcome in outcomes.items():
        (ledger / f"{num}.json").write_text(json.dumps({"run_dir": f"/s/{num}", **outcome}))
    return ledger


def test_completed_skipped_and_diverged_jobs_exit_0(tmp_path):
    signals.reset()
    ledger = _ledger(tmp_path, {0: {"status": "completed"}, 1: {"status": "completed", "skipped": True},
                                2: {"status": "diverged"}})
    status, line = tally(ledger, tmp_path)
    assert status == 0
    assert line == (f"lossbench: sweep {tmp_path}: 3 jobs: 2 completed (1 already finished, skipped), "
                    "1 diverged (a result, recorded in summary.json; not a failure), 0 failed")


def test_failures_are_listed_refusals_and_missing_reports_fail_the_sweep(tmp_path):
    signals.reset()
    outcomes = {n: {"status": "failed", "failure": f"/s/{n}/failure.json"} for n in range(7)}
    outcomes[8] = {"status": "refused"}
    outcomes[9] = {"status": "completed"}  # job 7 never reported
    status, line = tally(_ledger(tmp_path, outcomes), tmp_path)
    assert status == 1
    assert "10 jobs: 1 completed" in line
    assert "7 failed: /s/0/failure.json, /s/1/failure.json, /s/2/failure.json, /s/3/failure.json, " \
           "/s/4/failure.json and 2 more" in line
    assert "1 refused (the directory holds another configuration or is busy): /s/8" in line
    assert line.endswith("1 gave no report (killed?)")


def test_an_interrupted_sweep_exits_128_plus_the_signal(tmp_path):
    signals.reset()
    signals.request_stop(2, "received SIGINT")
    try:
        status, line = tally(_ledger(tmp_path, {0: {"status": "completed"}, 1: {"status": "interrupted"},
                                                2: {"status": "not_started"}}), tmp_path)
    finally:
        signals.reset()
    assert status == 130
    assert "1 interrupted and 1 not started (rerun the same command to resume)" in line
