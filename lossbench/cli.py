"""The `lossbench` command: run, report, losses."""

from __future__ import annotations

import sys

USAGE = """\
usage: lossbench <command> [args]

commands:
  run [OVERRIDES...]      train one experiment (Hydra overrides, e.g. loss=focal noise=sym60);
                          -m for a sweep: lossbench run -m loss=ce,gce noise=sym20,sym60 seed=0,1
  report DIR [DIR ...]    tables and plots from finished runs below DIR (--against PRESET: beside the
                          published numbers)
  reproduce NAME          a paper's protocol: the preset's grid as one sweep, then ours beside the
                          published numbers (--list: the presets; --dry-run: the runs and their cost)
  losses                  every loss: family, paper, hyperparameters and their per-dataset values
  list [GROUP ...]        the options of each config group (dataset, model, noise, ...)

`lossbench run --help` lists the config groups and their options.
"""


HYDRA_INFO_FLAGS = (
    "--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--shell-completion", "-sc",
)


def _run(argv: list[str]) -> None:
    import hydra

    overrides = [a for a in argv if not a.startswith("-")]
    if not any(a in HYDRA_INFO_FLAGS for a in argv):
        from lossbench.precheck import check_output_dir, check_overrides

        problem = check_overrides(overrides) or check_output_dir(overrides)
        if problem:
            print(f"lossbench: error: {problem}", file=sys.stderr)
            sys.exit(2)
    from lossbench.run import run  # torch and the catalogue load only once the overrides are known good

    main = hydra.main(config_path="pkg://lossbench.conf", config_name="config", version_base="1.3")(run)
    sys.argv = ["lossbench run", *argv]
    main()


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
    for column in ("name", "family", "paper", "hyperparameters", "per dataset (conf/dataset_loss)"):
        table.add_column(column)
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
    table = Table(title="lossbench config groups")
    for column in ("group", "option", "description"):
        table.add_column(column)
    for group in groups:
        options = group_options(group)
        if options is None:
            print(f"lossbench: error: unknown config group '{group}'", file=sys.stderr)
            sys.exit(2)
        for option in options:
            lines = root.joinpath(group, f"{option}.yaml").read_text().splitlines()
            comment = next((ln.lstrip("# ").strip() for ln in lines if ln.startswith("#")
                            and not ln.startswith("# @package")), "")
            table.add_row(group, option, comment)
    Console(width=160).print(table)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    command, rest = argv[0], argv[1:]
    if command == "run":
        _run(rest)
    elif command == "losses":
        _losses(rest)
    elif command == "list":
        _list(rest)
    elif command == "reproduce":
        from lossbench.protocols.reproduce import main as reproduce_main

        reproduce_main(rest)
    elif command == "report":
        from lossbench.report.cli import main as report_main

        report_main(rest)
    else:
        known = "run, report, reproduce, losses, list"
        print(f"lossbench: unknown command '{command}'; known: {known}\n", file=sys.stderr)
        print(USAGE, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
