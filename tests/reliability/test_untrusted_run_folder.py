"""A run folder is untrusted input: `lossbench evaluate` and `lossbench run` read what it records,
never run it.

A recorded config names no callable lossbench does not name itself: every ``_target_`` (and every
other instantiation key) must be the one of lossbench's own option for that group, every group
choice one of lossbench's options; anything else is refused in one line, before anything is
built, and nothing in the folder (a pickle, a marker) is executed. What is read is bounded
(size, YAML alias expansion, nesting, FIFOs). `evaluate` refuses overrides that change which
samples are test samples, and `--check` fails when it compared nothing.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time
from pathlib import Path

import pytest
import yaml

from lossbench.lifecycle.evaluate_command import main as evaluate_main

MARKER = "pwned-marker"


@pytest.fixture(scope="module")
def trained(cli_session, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("untrusted")
    out = root / "run"
    cli_session("run", f"hydra.run.dir={out}", "trainer.progress=none", "trainer.epochs=1",
                "model.hidden=[16]", "noise=sym40", cwd=root)
    return out


class _Opens:
    """A pickle whose loading creates a file (what an attacker's payload would do instead)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _copy(trained: Path, tmp_path: Path) -> Path:
    run = tmp_path / "received"
    shutil.copytree(trained, run)
    with open(run / "evil.pkl", "wb") as f:
        pickle.dump(_Opens(str(tmp_path / MARKER)), f)
    return run


def _edit(run: Path, change) -> None:
    path = run / ".hydra" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    change(config, run)
    path.write_text(yaml.safe_dump(config))


def _set(path: str, value):
    def change(config: dict, run: Path) -> None:
        node = config
        *parents, last = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value(run) if callable(value) else value
    return change


EXEC = {"_target_": "builtins.exec", "_args_": [f"open('{MARKER}', 'w')"]}
# What a hostile folder's recorded config may try: (id, change, a fragment the refusal names).
HOSTILE = [
    ("exec", _set("noise", {"_target_": "builtins.exec", "_args_": [f"open('{MARKER}', 'w')"]}),
     "noise._target_"),
    ("write_text", _set("noise", lambda run: {"_target_": "pathlib.Path.write_text",
                                             "_args_": [str(run.parent / MARKER), "x"]}), "noise._target_"),
    ("torch_load_pickle", _set("dataset", lambda run: {"_target_": "torch.load", "f": str(run / "evil.pkl"),
                                                       "weights_only": False}), "dataset._target_"),
    ("nested_target_in_a_value", _set("optim.lr", EXEC), "optim.lr._target_"),
    ("calibrator_target", _set("calibrator.temperature._target_", "builtins.exec"),
     "calibrator.temperature._target_"),
    ("partial_flag", _set("model._partial_", False), "model._partial_"),
    ("args", _set("loss._args_", [1, 2]), "loss._args_"),
    ("recursive_flag", _set("loss._recursive_", False), "loss._recursive_"),
    ("convert_flag", _set("noise._convert_", "all"), "noise._convert_"),
    ("new_top_level_node", _set("evil", {"_target_": "builtins.exec", "_args_": [f"open('{MARKER}', 'w')"]}),
     "evil._target_"),
    ("target_in_a_list", _set("model.hidden", [{"_target_": "builtins.exec", "_args_": ["1"]}]),
     "model.hidden"),
]


def _refused(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        evaluate_main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2, err
    assert len(err) == 1 and err[0].startswith("lossbench: error: "), err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize(("change", "fragment"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_evaluate_refuses_callables_the_folder_names(h, trained, tmp_path, capsys, monkeypatch, change,
                                                     fragment):
    monkeypatch.chdir(tmp_path)
    run = _copy(trained, tmp_path)
    _edit(run, change)
    before = h.snapshot(tmp_path)
    line = _refused([str(run)], capsys)
    assert fragment in line
    assert not (tmp_path / MARKER).exists() and not (run / MARKER).exists()
    assert h.snapshot(tmp_path) == before


SOME = HOSTILE[:3]


@pytest.mark.parametrize(("change", "fragment"), [c[1:] for c in SOME], ids=[c[0] for c in SOME])
def test_the_summarys_config_is_held_to_the_same_rules(h, trained, tmp_path, capsys, monkeypatch, change,
                                                       fragment):
    """Without .hydra/, evaluate reads summary.json's config: the same refusals."""
    monkeypatch.chdir(tmp_path)
    run = _copy(trained, tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    change(summary["config"], run)
    (run / "summary.json").write_text(json.dumps(summary))
    shutil.rmtree(run / ".hydra")
    line = _refused([str(run)], capsys)
    assert fragment in line
    assert not (tmp_path / MARKER).exists()


@pytest.mark.parametrize("choice", ["../../evil", "fcoal", "ce\nx", "/etc/passwd"])
def test_recorded_group_choices_must_be_lossbench_options(trained, tmp_path, capsys, choice):
    run = _copy(trained, tmp_path)
    hydra_yaml = run / ".hydra" / "hydra.yaml"
    data = yaml.safe_load(hydra_yaml.read_text())
    data["hydra"]["runtime"]["choices"]["loss"] = choice
    hydra_yaml.write_text(yaml.safe_dump(data))
    line = _refused([str(run)], capsys)
    assert "loss" in line and "known: " in line and "\n" not in line


def test_a_recorded_searchpath_is_not_followed(trained, tmp_path, capsys):
    """The folder cannot bring config options of its own: hydra.searchpath comes from the command line."""
    run = _copy(trained, tmp_path)
    conf = tmp_path / "theirs" / "loss"
    conf.mkdir(parents=True)
    (conf / "mine.yaml").write_text(f"_target_: builtins.exec\n_args_: [\"open('{MARKER}', 'w')\"]\n")
    hydra_yaml = run / ".hydra" / "hydra.yaml"
    data = yaml.safe_load(hydra_yaml.read_text())
    data["hydra"]["runtime"]["choices"]["loss"] = "mine"
    data["hydra"]["searchpath"] = [f"file://{tmp_path / 'theirs'}"]
    hydra_yaml.write_text(yaml.safe_dump(data))
    line = _refused([str(run)], capsys)
    assert "unknown loss 'mine'" in line and "hydra.searchpath" in line
    assert not (tmp_path / MARKER).exists()


def test_plain_recorded_values_are_kept(trained, tmp_path):
    """What a run may record is taken: its group choices and plain values (a list, a number, null)."""
    from lossbench.lifecycle.evaluate_command import load_config

    run = _copy(trained, tmp_path)
    cfg = load_config(run, [])
    assert list(cfg.model.hidden) == [16] and cfg.noise.rate == 0.4 and cfg.trainer.epochs == 1
    assert cfg.noise._target_ == "lossbench.noise.synthetic.Symmetric"


def test_a_pickled_weights_file_is_refused_in_one_line(trained, tmp_path, capsys, recwarn):
    run = _copy(trained, tmp_path)
    shutil.copy(run / "evil.pkl", run / "model_final.pt")
    line = _refused([str(run)], capsys)
    assert "model_final.pt" in line
    assert not (tmp_path / MARKER).exists()
    assert not [str(w.message) for w in recwarn], "torch's pickle warning would print before the line"


# -------------------------------------------------------------- bounded reading (item 3)

BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))


def _bombs(run: Path, tmp_path: Path) -> dict[str, callable]:
    config = run / ".hydra" / "config.yaml"

    def bomb() -> None:
        config.write_text(config.read_text() + BOMB)

    def huge() -> None:
        with open(config, "ab") as f:
            f.truncate(3 * 2**30)  # sparse: 3 GiB to read, none on disk

    def deep() -> None:
        config.write_text(config.read_text() + "deep: " + "[" * 100_000 + "]" * 100_000 + "\n")

    def fifo() -> None:
        config.unlink()
        os.mkfifo(config)

    def recursive() -> None:
        config.write_text(config.read_text() + "loop: &loop [*loop]\n")

    return {"bomb": bomb, "huge": huge, "deep": deep, "fifo": fifo, "recursive": recursive}


@pytest.mark.parametrize("kind", ["bomb", "huge", "deep", "fifo", "recursive"])
def test_evaluate_bounds_what_it_reads(h, trained, tmp_path, capsys, kind):
    run = _copy(trained, tmp_path)
    _bombs(run, tmp_path)[kind]()
    started = time.perf_counter()
    line = _refused([str(run)], capsys)
    assert time.perf_counter() - started < 20
    assert "config.yaml" in line


@pytest.mark.parametrize("kind", ["bomb", "huge", "fifo"])
def test_run_into_a_folder_with_a_bomb_is_refused_quickly(h, cli, trained, tmp_path, kind):
    run = _copy(trained, tmp_path)
    (run / "summary.json").unlink()  # an unfinished run: its recorded config is what is compared
    _bombs(run, tmp_path)[kind]()
    before = h.snapshot(run) if kind != "fifo" else None
    started = time.perf_counter()
    proc = cli("run", f"hydra.run.dir={run}", "trainer.progress=none", "trainer.epochs=1",
               "model.hidden=[16]", "noise=sym40", cwd=tmp_path, check=False, timeout=120)
    assert time.perf_counter() - started < 100
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "config.yaml" in lines[0], proc.stderr
    if before is not None:
        assert h.snapshot(run) == before


# -------------------------------------------------------------- which samples are test samples (item 7)


@pytest.mark.parametrize("override", ["dataset.split_seed=7", "dataset.test_size=0.5", "dataset.val_size=0.2",
                                      "dataset=synthetic", "dataset.test_size=450"])
def test_evaluate_refuses_overrides_that_change_the_test_samples(trained, tmp_path, capsys, override):
    line = _refused([str(trained), override], capsys)
    assert "test samples" in line and override.split("=")[0].lstrip("+") in line


def test_check_fails_when_nothing_was_compared(trained, tmp_path, capsys):
    run = _copy(trained, tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    kept = {k: summary[k] for k in ("status", "config", "provenance")}  # a record of no figure
    (run / "summary.json").write_text(json.dumps(kept))
    with pytest.raises(SystemExit) as exit_info:
        evaluate_main([str(run), "--check"])
    assert exit_info.value.code == 1
    assert "nothing was compared" in capsys.readouterr().err
