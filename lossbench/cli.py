"""The `lossbench` command: run, evaluate, report, losses, list."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

USAGE = """\
usage: lossbench <command> [args]     (lossbench --version)

commands:
  run [OVERRIDES...]      train one experiment (Hydra overrides, e.g. loss=focal noise=sym60;
                          presets with +experiment=NAME); -m for a sweep:
                          lossbench run -m loss=ce,gce noise=sym20,sym60 seed=0,1
  evaluate RUN_DIR [OVERRIDES...]
                          the summary's evaluation metrics again, from the run's saved weights
  report DIR [DIR ...]    tables and plots from finished runs below DIR (--against PRESET: beside the
                          published numbers)
  reproduce NAME          a paper's protocol: the preset's grid as one sweep, then ours beside the
                          published numbers (--list: the presets; --dry-run: the runs and their cost)
  losses                  every loss: family, paper, hyperparameters and their per-dataset values
  list [GROUP ...]        the options of each config group (dataset, model, noise, experiment, ...)

`lossbench run --help` lists the config groups and their options.
"""


# Loggers of libraries that chatter at INFO (alembic's plugin lines under Optuna); `verbose=true` shows them.
CHATTY_LOGGERS = ("alembic",)


def _verbose(overrides: list[str]) -> bool:
    """The top-level ``verbose`` override (third-party console output: Optuna, alembic, wandb)."""
    values = [o.partition("=")[2].strip().lower() for o in overrides if o.partition("=")[0] == "verbose"]
    return bool(values) and values[-1] in ("true", "1", "yes")


def quiet_libraries(overrides: list[str]) -> None:
    """Keep Optuna's and alembic's INFO lines off the console unless ``verbose=true``."""
    if _verbose(overrides):
        return
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    from lossbench.extras import chosen_options, installed

    if ("hydra/sweeper", "optuna") in chosen_options(overrides) and installed("optuna"):
        import optuna  # its loggers reset to INFO when first configured: configure them now

        optuna.logging.set_verbosity(optuna.logging.WARNING)


HYDRA_INFO_FLAGS = (
    "--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--shell-completion", "-sc",
)


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _remove_created(folder: Path, existing: Path) -> None:
    """Remove the empty folders a refused run left between ``folder`` and ``existing`` (which stays)."""
    for d in (folder, *folder.parents):
        if d == existing or d in existing.parents:
            return
        try:
            d.rmdir()  # only empty folders go
        except OSError:
            if d.exists():
                return


def _run(argv: list[str]) -> None:
    """`lossbench run`: check every combination, run (Hydra), then exit with a status that says
    what happened: 0 done (completed or diverged), 1 a run or a sweep's job failed, 2 refused
    before anything started, 128 + signal when stopped by SIGTERM (143) or SIGINT (130)."""
    import hydra

    from lossbench import lifecycle

    multirun = any(a in ("-m", "--multirun") for a in argv)
    overrides = [a for a in argv if not a.startswith("-")]
    output_dir = None
    from lossbench.extras import missing_extra

    missing = missing_extra(overrides)  # first: composing a missing plugin's config fails less clearly
    if missing:
        print(f"lossbench: error: {missing}", file=sys.stderr)
        sys.exit(2)
    if not any(a in HYDRA_INFO_FLAGS for a in argv):
        from lossbench.precheck import check

        result = check(overrides, multirun)
        if result.problem:
            print(f"lossbench: error: {result.problem}", file=sys.stderr)
            sys.exit(2)
        output_dir = result.output_dir
    existing = _nearest_existing(output_dir) if output_dir is not None else None
    quiet_libraries(overrides)

    from lossbench import callbacks
    from lossbench.run import run

    main = hydra.main(config_path="pkg://lossbench.conf", config_name="config", version_base="1.3")(run)
    sys.argv = ["lossbench run", *argv]
    lifecycle.reset()
    callbacks.LAST_SWEEP.clear()
    code: int | str | None = 0
    user_full_error = lifecycle.full_error()
    saved = {k: os.environ.get(k) for k in ("HYDRA_FULL_ERROR", lifecycle.FULL_ERROR_ENV)}
    os.environ[lifecycle.FULL_ERROR_ENV] = "1" if user_full_error else "0"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # what a launcher or a sweeper raises comes to the handler below
    with lifecycle.handle_signals(command=True):
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        except KeyboardInterrupt:
            import signal

            signal.signal(signal.SIGINT, signal.SIG_IGN)  # answered: a third Ctrl-C cannot cut the goodbye
            if lifecycle.stop_requested() is None:  # the parent of a cluster sweep: Ctrl-C detaches
                print("lossbench: stopped waiting; jobs already submitted keep running; rerun the same "
                      "command to collect them (finished runs are skipped)", file=sys.stderr)
            else:
                print("lossbench: stopped at once (second signal); the last checkpoint is kept; rerun the "
                      "same command to resume", file=sys.stderr)
            code = 130
        except Exception as exc:  # a launcher, a sweeper or Hydra gave up (a joblib worker was killed, ...)
            if user_full_error:
                raise
            code = _gave_up(exc, multirun)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    if code == 2 and not multirun and output_dir is not None and existing is not None:
        _remove_created(output_dir, existing)
    if multirun:
        signum = lifecycle.stop_requested()
        if callbacks.LAST_SWEEP and not code:
            code = callbacks.LAST_SWEEP["status"]
        elif not callbacks.LAST_SWEEP and signum is not None and code in (0, 1, None):
            code = 128 + int(signum)  # the sweep itself gave up after a signal (a worker died)
    if code:
        sys.exit(code)


def _gave_up(exc: Exception, multirun: bool) -> int:
    """One line for what stopped a run or a sweep outside any job, then a sweep's closing line (the
    jobs that reported, from its ledger); the exit status 1."""
    from lossbench import callbacks, lifecycle
    from lossbench.precheck import _one_line
    from lossbench.report.escape import printable

    what = "the sweep" if multirun else "the run"
    text = _one_line(exc)
    if type(exc).__name__ == "TerminatedWorkerError":  # joblib's: a worker process was killed or crashed
        codes = text.split("exit codes of the workers are", 1)[-1].split("Detailed")[0].strip(" .")
        text = f"a worker process died (exit codes {codes}): killed, out of memory, or crashed"
    elif "TrialState" in text:  # hydra's Optuna sweeper: a job's objective was NaN (it failed or was refused)
        text = f"Optuna gave up on a trial whose job failed (its objective is not a number): {text}"
    print(f"lossbench: error: {what} stopped: {type(exc).__name__}: {printable(text, 300)} "
          "(HYDRA_FULL_ERROR=1 shows the traceback)", file=sys.stderr, flush=True)
    ledger = os.environ.pop(lifecycle.LEDGER_ENV, None)
    if multirun and ledger and Path(ledger).is_dir():
        import shutil

        status, line = callbacks.tally(Path(ledger), Path(ledger).parent)
        shutil.rmtree(ledger, ignore_errors=True)
        if " 0 jobs: " in line:
            line = (f"lossbench: sweep {Path(ledger).parent}: no job reported before the sweep stopped; "
                    "rerun the same command to resume (finished runs are skipped, interrupted ones resume)")
        callbacks.LAST_SWEEP.update(status=max(status, 1), line=line)
        print(line, file=sys.stderr, flush=True)
    return 1


def _losses(argv: list[str]) -> None:
    from omegaconf import OmegaConf
    from rich.console import Console
    from rich.table import Table

    from lossbench.conf import CONF_DIR
    from lossbench.losses import FAMILIES, LOSSES
    from lossbench.losses.settings import dataset_settings, describe

    per_dataset: dict[str, dict[str, list[str]]] = {}
    for (dataset, name), entry in sorted(dataset_settings().items()):
        per_dataset.setdefault(name, {}).setdefault(describe(entry), []).append(dataset)
    table = Table(title="lossbench losses (defaults; a run on a listed dataset gets its values instead)")
    table.add_column("name", no_wrap=True)
    table.add_column("family", no_wrap=True)
    for column in ("paper", "hyperparameters", "per dataset (conf/dataset_loss)"):
        table.add_column(column, overflow="fold")
    order = {family: i for i, family in enumerate(FAMILIES)}
    rows = sorted(LOSSES.items(), key=lambda kv: (order.get(kv[1].family, 99), kv[0]))
    for name, cls in rows:
        defaults = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "loss" / f"{name}.yaml"))
        params = ", ".join(f"{k}={v}" for k, v in defaults.items() if k != "_target_")
        changes = "; ".join(f"{', '.join(datasets)}: {text}"
                            for text, datasets in per_dataset.get(name, {}).items())
        table.add_row(name, cls.family, cls.paper, params, changes)
    Console().print(table)


def _list(argv: list[str]) -> None:
    from importlib import resources

    from rich.console import Console
    from rich.table import Table

    from lossbench.precheck import CONFIG_MODULE, group_options

    root = resources.files(CONFIG_MODULE)
    groups = argv or sorted(
        p.name for p in root.iterdir() if p.is_dir() and group_options(p.name) and p.name != "hydra"
    )
    for group in groups:
        if group_options(group) is None:
            print(f"lossbench: error: unknown config group '{group}'", file=sys.stderr)
            sys.exit(2)
    table = Table(title="lossbench config groups",
                  caption="pick with group=option; presets with +experiment=NAME")
    table.add_column("group", no_wrap=True)
    table.add_column("option", no_wrap=True)
    table.add_column("description", overflow="fold")
    for group in groups:
        for option in group_options(group):
            text = root.joinpath(group, f"{option}.yaml").read_text()
            table.add_row(group, option, describe(text))
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # piped: wide lines, every description whole
    console.print(table)


def describe(yaml_text: str) -> str:
    """A config file's description: its first comment paragraph, whole, as one line.

    The paragraph ends at the first line that is not a comment, an empty comment
    line, or an indented example (``#   lossbench run ...``).
    """
    words = []
    for line in yaml_text.splitlines():
        if line.startswith("# @package"):
            continue
        if not line.startswith("#"):
            break
        body = line[1:]
        if not body.strip() or body.startswith("   "):
            break
        words.append(body.strip())
    return " ".join(words)


def main(argv: list[str] | None = None) -> None:
    """The command (``argv``: in-process use, which keeps its signal handlers as they were)."""
    try:
        _dispatch(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:  # `lossbench list | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except KeyboardInterrupt:  # Ctrl-C in report, evaluate, or before a run started: files are written whole
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C cannot interrupt the goodbye
        print("lossbench: stopped (Ctrl-C); no file was left half-written", file=sys.stderr, flush=True)
        sys.exit(130)
    finally:
        if argv is None:  # the process ends here: a signal it answered cannot cut its exit hooks
            from lossbench import lifecycle

            lifecycle.quiet_exit()


def _dispatch(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    if argv[0] in ("--version", "-V", "version"):
        import lossbench

        print(f"lossbench {lossbench.__version__}")
        return
    command, rest = argv[0], argv[1:]
    if command == "run":
        _run(rest)
    elif command == "losses":
        _losses(rest)
    elif command == "list":
        _list(rest)
    elif command == "evaluate":
        from lossbench.evaluate_run import main as evaluate_main

        evaluate_main(rest)
    elif command == "reproduce":
        from lossbench.protocols.reproduce import main as reproduce_main

        reproduce_main(rest)
    elif command == "report":
        from lossbench.report.cli import main as report_main

        report_main(rest)
    else:
        known = "run, evaluate, report, reproduce, losses, list"
        print(f"lossbench: unknown command '{command}'; known: {known}\n", file=sys.stderr)
        print(USAGE, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
