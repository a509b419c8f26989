"""The `lossbench` command: run, evaluate, report, losses, list."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
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
    from lossbench.core.extras import chosen_options, installed

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


UNKNOWN = object()


@contextlib.contextmanager
def _mode_known(mode: object) -> Iterator[None]:
    """Hydra composes the whole config once only to read its ``hydra.mode`` before composing it again
    for the run (``Hydra.get_mode``); the precheck has read it already: Hydra is told, not asked
    (0.2 to 0.3 s of CPU a command). ``UNKNOWN``: Hydra asks itself."""
    if mode is UNKNOWN:
        yield
        return
    from hydra._internal.hydra import Hydra

    original = Hydra.get_mode
    Hydra.get_mode = lambda self, config_name, overrides: mode
    try:
        yield
    finally:
        Hydra.get_mode = original


def _run(argv: list[str]) -> None:
    """`lossbench run`: check every combination, run (Hydra), then exit with a status that says
    what happened: 0 done (completed or diverged), 1 a run or a sweep's job failed, 2 refused
    before anything started, 128 + signal when stopped by SIGTERM (143) or SIGINT (130)."""
    import hydra

    from lossbench.core import signals

    multirun = any(a in ("-m", "--multirun") for a in argv)
    overrides = [a for a in argv if not a.startswith("-")]
    output_dir = None
    if any(a in ("--help", "-h") for a in argv):
        print(run_help(overrides))
        return
    from lossbench.core.extras import missing_extra

    missing = missing_extra(overrides)  # first: composing a missing plugin's config fails less clearly
    if missing:
        print(f"lossbench: error: {missing}", file=sys.stderr)
        sys.exit(2)
    mode = UNKNOWN
    if not any(a in HYDRA_INFO_FLAGS for a in argv):
        from lossbench.lifecycle.precheck import check

        result = check(overrides, multirun)
        if result.problem:
            print(f"lossbench: error: {result.problem}", file=sys.stderr)
            sys.exit(2)
        output_dir, mode = result.output_dir, result.mode
    existing = _nearest_existing(output_dir) if output_dir is not None else None
    quiet_libraries(overrides)
    from lossbench.lifecycle.naming import exclude_override, register_resolvers

    register_resolvers()
    if multirun:  # the run folders are named by what the sweep varies: the constant settings stay out
        argv = [*argv, *exclude_override(overrides)]
        from lossbench.core.extras import chosen_options

        if not any(group == "hydra/sweeper" for group, _ in chosen_options(overrides)):
            argv.append("hydra/sweeper=lossbench")  # Hydra's basic sweeper, each job composed once

    from lossbench.lifecycle import callbacks
    from lossbench.lifecycle.run import run

    main = hydra.main(config_path="pkg://lossbench.conf", config_name="config", version_base="1.3")(run)
    # -m first: Hydra's argument parser takes no override after a flag (`run a=1 -m b=1,2`)
    flags = [a for a in argv if a in ("-m", "--multirun")]
    sys.argv = ["lossbench run", *flags, *(a for a in argv if a not in flags)]
    signals.reset()
    callbacks.LAST_SWEEP.clear()
    code: int | str | None = 0
    user_full_error = signals.full_error()
    saved = {k: os.environ.get(k) for k in ("HYDRA_FULL_ERROR", signals.FULL_ERROR_ENV)}
    os.environ[signals.FULL_ERROR_ENV] = "1" if user_full_error else "0"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # what a launcher or a sweeper raises comes to the handler below
    with signals.handle_signals(command=True), _mode_known(mode):
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        except KeyboardInterrupt:
            import signal

            signal.signal(signal.SIGINT, signal.SIG_IGN)  # answered: a third Ctrl-C cannot cut the goodbye
            if signals.stop_requested() is None:  # the parent of a cluster sweep: Ctrl-C detaches
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
        signum = signals.stop_requested()
        if callbacks.LAST_SWEEP and not code:
            code = callbacks.LAST_SWEEP["status"]
        elif not callbacks.LAST_SWEEP and signum is not None and code in (0, 1, None):
            code = 128 + int(signum)  # the sweep itself gave up after a signal (a worker died)
    if code:
        sys.exit(code)


def visible_groups() -> list[str]:
    """The config groups a user picks from (not Hydra's, not the internal specialisations)."""
    from importlib import resources

    from lossbench.lifecycle.config_tree import CONFIG_MODULE, INTERNAL_GROUPS, group_options

    root = resources.files(CONFIG_MODULE)
    return sorted(p.name for p in root.iterdir() if p.is_dir() and group_options(p.name)
                  and p.name != "hydra" and p.name not in INTERNAL_GROUPS)


def run_help(overrides: list[str]) -> str:
    """`lossbench run --help`: conf/hydra/help/lossbench.yaml's template with the groups a user picks
    from and the config composed with ``overrides`` (Hydra's own help lists the internal groups too)."""
    from importlib import resources

    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from lossbench.lifecycle.config_tree import CONFIG_MODULE, group_options
    from lossbench.lifecycle.precheck import _one_line

    text = resources.files(CONFIG_MODULE).joinpath("hydra", "help", "lossbench.yaml").read_text()
    help_cfg = OmegaConf.to_container(OmegaConf.create(text), resolve=False)
    groups = "\n".join(f"{g}: {', '.join(group_options(g))}" for g in visible_groups())
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            config = OmegaConf.to_yaml(compose(config_name="config", overrides=overrides))
    except Exception as exc:  # a bad override: say so in one line, as `run` would
        print(f"lossbench: error: {_one_line(exc)}", file=sys.stderr)
        sys.exit(2)
    finally:
        GlobalHydra.instance().clear()
    return (str(help_cfg["template"])
            .replace("${hydra.help.header}", str(help_cfg["header"]).rstrip())
            .replace("${hydra.help.footer}", str(help_cfg["footer"]).rstrip())
            .replace("$APP_CONFIG_GROUPS", groups).replace("$CONFIG", config.rstrip()))


def _gave_up(exc: Exception, multirun: bool) -> int:
    """One line for what stopped a run or a sweep outside any job, then a sweep's closing line (the
    jobs that reported, from its ledger); the exit status 1."""
    from lossbench.core import signals
    from lossbench.lifecycle import callbacks
    from lossbench.lifecycle.precheck import _one_line
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
    ledger = os.environ.pop(signals.LEDGER_ENV, None)
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
    from rich.table import Table

    from lossbench.conf import CONF_DIR
    from lossbench.core.console import table_console
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
    table_console().print(table)


def _list(argv: list[str]) -> None:
    from importlib import resources

    from rich.table import Table

    from lossbench.core.console import table_console
    from lossbench.lifecycle.config_tree import CONFIG_MODULE, group_options

    root = resources.files(CONFIG_MODULE)
    groups = argv or visible_groups()
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
        for option, description in option_rows(group, root):
            table.add_row(group, option, description)
    table_console().print(table)  # piped: every description whole


def option_rows(group: str, root) -> list[tuple[str, str]]:
    """(option, description) rows of a group; the presets of one option at set rates (asym10, asym20 of
    asym) share one row that names the rates, rather than repeating the option's paragraph."""
    import re

    from omegaconf import OmegaConf

    from lossbench.lifecycle.config_tree import group_options

    options = group_options(group)
    rates: dict[str, list[tuple[str, object]]] = {}
    for option in options:
        match = re.fullmatch(r"([a-z_]+?)(\d+)", option)
        if match and match.group(1) in options:
            try:
                rate = OmegaConf.create(root.joinpath(group, f"{option}.yaml").read_text()).get("rate")
            except Exception:
                rate = None
            if rate is not None:
                rates.setdefault(match.group(1), []).append((option, rate))
    preset = {name for members in rates.values() for name, _ in members}
    rows = []
    for option in options:
        if option in preset:
            continue
        rows.append((option, describe(root.joinpath(group, f"{option}.yaml").read_text())))
        if option in rates:
            names = ", ".join(name for name, _ in rates[option])
            values = ", ".join(str(rate) for _, rate in rates[option])
            rows.append((names, f"{option} at {group}.rate {values}"))
    return rows


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
        from lossbench.core.startup import STOPPED

        print(STOPPED, file=sys.stderr, flush=True)
        if argv is None:  # the process ends here, answered: leave without the interpreter's finalization,
            sys.stdout.flush()  # where a Ctrl-C that came during the goodbye could still end it as killed
            os._exit(130)  # by SIGINT (status -2, seen once in 25 quick double Ctrl-Cs at startup)
        sys.exit(130)
    finally:
        if argv is None:  # the process ends here: a signal it answered cannot cut its exit hooks
            from lossbench.core import signals

            signals.quiet_exit()


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
        from lossbench.lifecycle.evaluate_command import main as evaluate_main

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
