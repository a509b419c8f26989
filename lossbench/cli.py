"""The `lossbench` command: run, evaluate, report, losses, list."""

from __future__ import annotations

import logging
import sys

USAGE = """\
usage: lossbench <command> [args]     (lossbench --version)

commands:
  run [OVERRIDES...]      train one experiment (Hydra overrides, e.g. loss=focal noise=sym60;
                          presets with +experiment=NAME); -m for a sweep:
                          lossbench run -m loss=ce,gce noise=sym20,sym60 seed=0,1
  evaluate RUN_DIR [OVERRIDES...]
                          the summary's evaluation metrics again, from the run's saved weights
  report DIR [DIR ...]    tables and plots from finished runs below DIR
  losses                  every available loss with its family and paper
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


def _run(argv: list[str]) -> None:
    import hydra

    overrides = [a for a in argv if not a.startswith("-")]
    from lossbench.extras import missing_extra

    missing = missing_extra(overrides)  # first: composing a missing plugin's config fails less clearly
    if missing:
        print(f"lossbench: error: {missing}", file=sys.stderr)
        sys.exit(2)
    if not any(a in HYDRA_INFO_FLAGS for a in argv):
        from lossbench.precheck import check_output_dir, check_overrides

        problem = check_overrides(overrides) or check_output_dir(overrides)
        if problem:
            print(f"lossbench: error: {problem}", file=sys.stderr)
            sys.exit(2)
    quiet_libraries(overrides)
    from lossbench.run import run  # torch and the catalogue load only once the overrides are known good

    main = hydra.main(config_path="pkg://lossbench.conf", config_name="config", version_base="1.3")(run)
    sys.argv = ["lossbench run", *argv]
    main()


def _losses(argv: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    from lossbench.losses import FAMILIES, LOSSES

    table = Table(title="lossbench losses")
    for column in ("name", "family", "paper"):
        table.add_column(column)
    order = {family: i for i, family in enumerate(FAMILIES)}
    rows = sorted(LOSSES.items(), key=lambda kv: (order.get(kv[1].family, 99), kv[0]))
    for name, cls in rows:
        table.add_row(name, cls.family, cls.paper)
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
    try:
        _dispatch(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:  # `lossbench list | head`: the reader left; not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


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
    elif command == "report":
        from lossbench.report.cli import main as report_main

        report_main(rest)
    else:
        print(f"lossbench: unknown command '{command}'; known: run, evaluate, report, losses, list\n",
              file=sys.stderr)
        print(USAGE, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
