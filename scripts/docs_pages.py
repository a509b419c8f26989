"""The documentation site's generated pages, built from the code at every `mkdocs build`.

mkdocs.yml runs this file through the mkdocs-gen-files plugin; nothing it writes is kept in git.

- ``reference/config/``: every config group and option, from lossbench/conf/ (each file's first
  comment paragraph, as `lossbench list` shows it, its keys and values) and the validation schemas
  (lossbench/lifecycle/validation.py: the targets' signatures, the Trainer and logger dataclasses, RULES);
- ``reference/losses.md``: every loss of the registry with its formula, paper, hyperparameters and
  per-dataset settings, as `lossbench losses` prints them;
- ``reference/presets.md``: every preset with its grid and published numbers (lossbench/protocols/);
- ``reference/commands.md``: the hand-written page with each command's --help appended;
- ``concepts/architecture.md``: the hand-written page with the layer diagram and the module list
  (scripts/import_layers.py) put in place of its markers;
- ``benchmarks/``: the measured tables of benchmarks/*.md.

    python scripts/docs_pages.py OUT_DIR     # write the generated pages into a folder, to read them

Where lossbench's modules live is named in one place: MODULES below (and LAYERS in import_layers.py).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import import_layers  # noqa: E402  (scripts/import_layers.py, beside this file)

# Where the things the pages are generated from live. A package move changes these lines only.
MODULES = {
    "conf": "lossbench.conf",                        # CONF_DIR: the config tree
    "validation": "lossbench.lifecycle.validation",  # _schema_of, _hint_text, RULES, TopLevel, LoggerSettings
    "trainer": "lossbench.train.trainer",            # Trainer (the trainer group's schema)
    "losses": "lossbench.losses",                    # LOSSES, FAMILIES
    "loss_settings": "lossbench.losses.settings",    # dataset_settings, describe
    "catalogue": "lossbench.protocols.catalogue",    # preset_names, load_protocol, compose_preset, MARKS
    "cli": "lossbench.cli",                          # describe (a config file's description), USAGE
    "commands": {                                    # each command's main(argv), for its --help
        "evaluate": "lossbench.lifecycle.evaluate_command",
        "report": "lossbench.report.cli",
        "reproduce": "lossbench.protocols.reproduce",
    },
}

# What each config group is for, in one line (the option descriptions come from the files).
GROUP_INTRO = {
    "dataset": "The data: what is trained and tested on, where its files are, the split.",
    "model": "The network, built from (input shape, number of classes).",
    "loss": "The training loss and its hyperparameters. The [loss reference](../losses.md) has each "
            "loss's formula, paper and per-dataset settings.",
    "noise": "The label noise of the training and validation labels (test labels stay clean). "
             "See [noise conventions](../../concepts/noise.md).",
    "reweight": "Sample reweighting or loss correction during training.",
    "detect": "A noisy-label detector run once before training ([guide](../../guides/detect.md)).",
    "adversarial": "Adversarial training: what a training step minimises per sample "
                   "([guide](../../guides/adversarial.md)).",
    "attack": "The robust test accuracy reported at the end ([guide](../../guides/adversarial.md)).",
    "calibrator": "Post-hoc calibrators fitted on validation, several at once: `calibrator=[temperature,"
                  "vector]` ([guide](../../guides/calibration.md)).",
    "optim": "The optimizer (a partial: the run hands it the parameters).",
    "scheduler": "The learning-rate schedule (a partial: the run hands it the optimizer).",
    "trainer": "Training length, batch, device, precision, checkpoints, threads, saved weights.",
    "logger": "Local files only, or Weights & Biases as well ([guide](../../guides/wandb.md)).",
    "experiment": "Presets, added with `+experiment=NAME`: a paper's protocol (the "
                  "[preset reference](../presets.md)) or a ready-made sweep.",
    "protocol": "A published protocol's settings, chosen by its `experiment` preset (none by default).",
    "dataset_loss": "A loss's settings for one dataset, applied by itself when the run's dataset and loss "
                    "match the file name `<dataset>_<loss>` ([per-dataset settings]"
                    "(../../concepts/losses.md#per-dataset-loss-settings)).",
    "protocol_loss": "What a protocol pins for one loss, applied by itself as `<protocol>_<loss>`.",
    "protocol_noise": "What a protocol pins for one noise setting, applied by itself as "
                      "`<protocol>_<noise>`.",
    "hydra/launcher": "Where a sweep's jobs run: lossbench's own launchers (Hydra's basic, joblib, "
                      "submitit_local and submitit_slurm come from their plugins; "
                      "[sweeps](../../guides/sweeps.md), [SLURM](../../guides/slurm.md), "
                      "[packing](../../concepts/packing.md)).",
    "hydra/help": "The text of `lossbench run --help`.",
    "hydra/job_logging": "How a run logs: the console and `run.log`.",
}


def _import(name: str):
    import importlib

    return importlib.import_module(name)


def _md(text: Any) -> str:
    """Text from the code or the config files, safe in Markdown: ``[a][b]`` and ``[a] [b]`` (indices,
    adjacent marks) would read as reference links."""
    return re.sub(r"\]( ?)\[", r"]\1\\[", str(text))


def _cell(text: Any) -> str:
    """A value as a Markdown table cell."""
    return _md(text).replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    text = str(value).replace("|", "\\|")
    return f"`{text}`" if text else '`""`'


def slug(group: str) -> str:
    return group.replace("/", "-")


# ---------------------------------------------------------------- config reference


def conf_dir() -> Path:
    return Path(_import(MODULES["conf"]).CONF_DIR)


def config_groups() -> list[str]:
    """Every folder of the config tree that holds option files, as `group` or `hydra/launcher`."""
    root = conf_dir()
    groups = []
    for folder in sorted(p for p in root.rglob("*") if p.is_dir()):
        if any(folder.glob("*.yaml")):
            groups.append(folder.relative_to(root).as_posix())
    return groups


def group_defaults() -> dict[str, str]:
    """{group: its default option} from config.yaml's defaults list."""
    from omegaconf import OmegaConf

    out = {}
    for entry in OmegaConf.to_container(OmegaConf.load(conf_dir() / "config.yaml")).get("defaults", []):
        if isinstance(entry, dict):
            for key, value in entry.items():
                group = key.split()[-1]
                out[group] = ", ".join(value) if isinstance(value, list) else str(value)
    return out


def _comments(text: str) -> dict[str, str]:
    """{top-level key: its inline comment} of a YAML file."""
    found = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z_][\w]*):(.*?)\s#\s?(.*)$", line)
        if m and m.group(2).count('"') % 2 == 0 and m.group(2).count("'") % 2 == 0:
            found[m.group(1)] = m.group(3).strip()
    return found


def _short(text: str, limit: int = 160) -> str:
    """The first sentence of a description, cut at a word under ``limit`` characters."""
    sentence = re.split(r"(?<=[.;])\s", text, maxsplit=1)[0]
    if len(sentence) <= limit:
        return sentence
    return sentence[:limit].rsplit(" ", 1)[0] + " ..."


def _schema(group: str, node: dict) -> tuple[dict[str, tuple[Any, Any]], Callable[[str], str]]:
    """The schema a group's keys are checked against ({key: (hint, default)}) and a key's allowed text."""
    validation = _import(MODULES["validation"])
    schema: dict[str, tuple[Any, Any]] = {}
    try:
        if group == "trainer":
            schema, _ = validation._schema_of(_import(MODULES["trainer"]).Trainer)
        elif group == "logger":
            schema, _ = validation._schema_of(validation.LoggerSettings)
        elif isinstance(node.get("_target_"), str) and not group.startswith("hydra"):
            from hydra.utils import get_object

            schema, _ = validation._schema_of(get_object(node["_target_"]))
    except Exception:  # a target that needs an optional package: its keys are shown without types
        schema = {}

    def allowed(key: str) -> str:
        rule = validation.RULES.get(f"{group}.{key}")
        if rule is not None:
            text = rule[1]
            return text() if callable(text) else text
        if key in schema:
            return validation._hint_text(schema[key][0])
        return ""

    return schema, allowed


def option_keys(group: str, text: str) -> list[tuple[str, Any, str, str]]:
    """[(key, value in the file, allowed values, the file's comment)] of an option file's top-level keys."""
    import yaml

    node = yaml.safe_load(text) or {}
    if not isinstance(node, dict):
        return []
    _, allowed = _schema(group, node)
    comments = _comments(text)
    return [(k, v, allowed(k), comments.get(k, "")) for k, v in node.items()
            if not str(k).startswith("_") and k != "defaults"]


def _yaml_block(title: str, text: str) -> list[str]:
    body = ["    " + line if line else "" for line in text.rstrip().splitlines()]
    return [f'??? example "{title}"', "", "    ```yaml", *body, "    ```", ""]


def group_page(group: str) -> str:
    describe = _import(MODULES["cli"]).describe
    root = conf_dir() / group
    options = sorted(p.stem for p in root.glob("*.yaml"))
    default = group_defaults().get(group)
    how = "`+experiment=NAME`" if group == "experiment" else f"`{group}=OPTION`"
    out = [f"# `{group}`", "", GROUP_INTRO.get(group, ""), ""]
    line = f"Pick with {how}" + (f"; the default is `{default}`." if default else ".")
    if not group.startswith("hydra") and "_" not in group.replace("dataset_loss", "x"):
        line += f" `lossbench list {group}` prints the same list in the terminal."
    out += [line, ""]
    if group in ("trainer", "logger"):
        out += group_schema(group)
    out += ["| option | description |", "| --- | --- |"]
    out += [f"| [`{o}`](#{o}) | {_cell(_short(describe((root / f'{o}.yaml').read_text())))} |"
            for o in options]
    out.append("")
    for option in options:
        path = root / f"{option}.yaml"
        text = path.read_text()
        out += [f"## `{option}` {{ #{option} }}", ""]
        description = describe(text)
        if description:
            out += [_md(description), ""]
        keys = option_keys(group, text)
        if keys:
            out += ["| key | value | allowed | note |", "| --- | --- | --- | --- |"]
            out += [f"| `{group.split('/')[-1]}.{k}` | {_code(v)} | {_cell(a)} | {_cell(c)} |"
                    for k, v, a, c in keys]
            out.append("")
        out += _yaml_block(f"lossbench/conf/{group}/{option}.yaml", text)
    return "\n".join(out)


def group_schema(group: str) -> list[str]:
    """The schema table of a group whose options share one (trainer: Trainer, logger: LoggerSettings)."""
    import yaml

    text = (conf_dir() / group / ("default.yaml" if group == "trainer" else "wandb.yaml")).read_text()
    node = yaml.safe_load(text)
    schema, allowed = _schema(group, node)
    comments = _comments(text)
    out = ["Every key, its type (the validation schema) and what the file says:", "",
           "| key | allowed | default | note |", "| --- | --- | --- | --- |"]
    for key, (_, default) in schema.items():
        shown = node.get(key, default)
        if shown is inspect.Parameter.empty or "dataclasses._MISSING" in repr(shown):
            shown = ""
        out.append(f"| `{group}.{key}` | {_cell(allowed(key))} | {_code(shown)} "
                   f"| {_cell(comments.get(key, ''))} |")
    return [*out, ""]


def top_level_keys() -> list[str]:
    """The keys at the top of config.yaml, with the comment above each and their schema."""
    import yaml

    validation = _import(MODULES["validation"])
    text = (conf_dir() / "config.yaml").read_text()
    node = yaml.safe_load(text)
    schema, _ = validation._schema_of(validation.TopLevel)
    notes: dict[str, str] = {}
    above: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            above.append(line[1:].strip())
            continue
        m = re.match(r"^(\w+):", line)
        if m:
            notes[m.group(1)] = " ".join(above)
        above = []
    out = ["| key | default | allowed | note |", "| --- | --- | --- | --- |"]
    for key, value in node.items():
        if key in ("defaults", "hydra"):
            continue
        if isinstance(value, dict):  # loss.reduction
            for sub, v in value.items():
                rule = validation.RULES.get(f"{key}.{sub}")
                allowed = rule[1]() if rule and callable(rule[1]) else (rule[1] if rule else "")
                out.append(f"| `{key}.{sub}` | {_code(v)} | {_cell(allowed)} | {_cell(notes.get(key, ''))} |")
            continue
        rule = validation.RULES.get(key)
        allowed = rule[1] if rule else (validation._hint_text(schema[key][0]) if key in schema else "")
        allowed = allowed() if callable(allowed) else allowed
        out.append(f"| `{key}` | {_code(value)} | {_cell(allowed)} | {_cell(notes.get(key, ''))} |")
    return out


def config_index() -> str:
    defaults = group_defaults()
    out = [
        "# Config options", "",
        "Every setting of a run is a key of the composed Hydra config. Config **groups** are folders of "
        "small YAML files under `lossbench/conf/`; pick one file (an **option**) per group with "
        "`group=option` and change any key with `group.key=value`. This reference is generated from those "
        "files and from the validation schemas (`lossbench/lifecycle/validation.py`) at every build of the "
        "site; "
        "`lossbench list [GROUP]` and `lossbench run --help` show the same in the terminal.", "",
        "Bad values are refused before anything runs, with one line naming the key, the value and what is "
        "allowed; see [the run's lifecycle](../../concepts/lifecycle.md).", "",
        "## Groups", "",
        "| group | default | options |", "| --- | --- | --- |",
    ]
    for group in config_groups():
        options = sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))
        links = ", ".join(f"[`{o}`]({slug(group)}.md#{o})" for o in options)
        out.append(f"| [`{group}`]({slug(group)}.md) | {_code(defaults[group]) if group in defaults else ''} "
                   f"| {links} |")
    out += ["", "## Top-level keys", "", *top_level_keys(), ""]
    return "\n".join(out)


# ---------------------------------------------------------------- losses


def _flags(cls: type) -> str:
    parts = []
    if getattr(cls, "level", "sample") != "sample":
        parts.append(f"`level = \"{cls.level}\"`")
    for flag in ("trainable", "needs_head", "needs_features", "needs_index"):
        if getattr(cls, flag, False):
            parts.append(f"`{flag}`")
    if not getattr(cls, "probabilistic", True):
        parts.append("not `probabilistic` (depends on more than softmax(logits))")
    if getattr(cls, "grad_clip", None):
        parts.append(f"`grad_clip = {cls.grad_clip}`")
    return ", ".join(parts)


def loss_rows() -> list[dict[str, Any]]:
    """Every registered loss: name, class, family, paper, formula line, docstring, defaults, per-dataset."""
    from omegaconf import OmegaConf

    losses = _import(MODULES["losses"])
    settings = _import(MODULES["loss_settings"])
    per_dataset: dict[str, list[tuple[str, str]]] = {}
    for (dataset, name), entry in sorted(settings.dataset_settings().items()):
        text = settings.describe(entry)
        if entry.get("from"):
            text += f" (from {', '.join(entry['from'])})"
        per_dataset.setdefault(name, []).append((dataset, text))
    order = {family: i for i, family in enumerate(losses.FAMILIES)}
    rows = []
    for name, cls in sorted(losses.LOSSES.items(), key=lambda kv: (order.get(kv[1].family, 99), kv[0])):
        path = conf_dir() / "loss" / f"{name}.yaml"
        doc = inspect.getdoc(cls) or ""
        rows.append({
            "name": name, "cls": cls, "family": cls.family, "paper": cls.paper,
            "formula": doc.split("\n\n")[0].replace("\n", " "),
            "doc": doc.split("\n\n", 1)[1] if "\n\n" in doc else "",
            "defaults": OmegaConf.to_container(OmegaConf.load(path)), "yaml": path.read_text(),
            "per_dataset": per_dataset.get(name, []),
        })
    return rows


def losses_page() -> str:
    rows = loss_rows()
    families = _import(MODULES["losses"]).FAMILIES
    out = [
        "# Losses", "",
        f"{len(rows)} losses, generated from the loss registry and `lossbench/conf/loss/` at every build of "
        "the site (`lossbench losses` prints the same table in the terminal). Pick one with `loss=NAME`; "
        "set a hyperparameter with `loss.KEY=VALUE`. A loss's defaults are its authors' CIFAR-10 settings; "
        "where the authors ran it differently on another dataset, a run on that dataset gets their values "
        "(the *per dataset* lines, from `lossbench/conf/dataset_loss/`; "
        "[how they apply](../concepts/losses.md#per-dataset-loss-settings)). Where lossbench knowingly "
        "differs from an author's code, the difference is an option: "
        "[the table](../concepts/losses.md#where-lossbench-knowingly-differs-from-the-authors-code).", "",
        "Every loss also takes `loss.reduction` (`mean`, the default, or `sum`), served by the training "
        "step.", "",
        "| loss | family | paper | formula |", "| --- | --- | --- | --- |",
    ]
    out += [f"| [`{r['name']}`](#{r['name']}) | {r['family']} | {_cell(r['paper'])} | {_cell(r['formula'])} |"
            for r in rows]
    out.append("")
    current = None
    for r in rows:
        if r["family"] != current:
            current = r["family"]
            out += [f"## {current} {{ #family-{current} }}", ""] if current in families else []
        cls = r["cls"]
        out += [f"### `{r['name']}` {{ #{r['name']} }}", "", f"**{_md(r['formula'])}**", "",
                f"- family: {r['family']}; paper: {r['paper']}",
                f"- class: `{cls.__module__}.{cls.__qualname__}`"]
        params = ", ".join(f"`{k}={v}`" for k, v in r["defaults"].items() if k != "_target_")
        out.append(f"- hyperparameters: {params or 'none'}")
        if r["per_dataset"]:
            out.append("- per dataset: " + "; ".join(f"`{d}`: {t}" for d, t in r["per_dataset"]))
        flags = _flags(cls)
        if flags:
            out.append(f"- shape: {flags}")
        out.append("")
        if r["doc"]:
            out += [_md(r["doc"]), ""]
        out += _yaml_block(f"lossbench/conf/loss/{r['name']}.yaml", r["yaml"])
    return "\n".join(out)


# ---------------------------------------------------------------- presets


def _number(cell) -> str:
    text = f"{cell.mean:.2f}"
    if cell.std is not None:
        text += f" ± {cell.std:.2f}"
    if cell.n is not None:
        text += f" ({cell.n})"
    return text


def _cells_table(cells) -> list[str]:
    """Rows loss, columns noise; each cell its number(s) with the mark."""
    noises = list(dict.fromkeys(c.noise for c in cells))
    losses = list(dict.fromkeys(c.loss for c in cells))
    metrics = list(dict.fromkeys(c.metric for c in cells))
    out = []
    for metric in metrics:
        if len(metrics) > 1:
            out += [f"*{metric}*", ""]
        out += ["| loss | " + " | ".join(noises) + " |", "| --- |" + " ---: |" * len(noises)]
        for loss in losses:
            row = []
            for noise in noises:
                found = [c for c in cells if (c.loss, c.noise, c.metric) == (loss, noise, metric)]
                row.append("<br>".join(f"{_number(c)} {_md(c.mark)}" for c in found))
            if any(row):
                out.append(f"| `{loss}` | " + " | ".join(_cell(x) for x in row) + " |")
        out.append("")
    return out


def preset_rows() -> list[dict[str, Any]]:
    catalogue = _import(MODULES["catalogue"])
    rows = []
    for name in catalogue.preset_names():
        protocol = catalogue.load_protocol(name)
        cfg = catalogue.compose_preset(name)
        grid = catalogue.preset_grid(cfg)
        rows.append({"name": name, "protocol": protocol, "grid": grid,
                     "model": cfg.hydra.runtime.choices.get("model"), "epochs": cfg.trainer.epochs,
                     "dataset": cfg.hydra.runtime.choices.get("dataset")})
    return rows


def presets_page() -> str:
    catalogue = _import(MODULES["catalogue"])
    rows = preset_rows()
    out = [
        "# Presets", "",
        f"{len(rows)} presets, each a published protocol as its official code runs it, generated from "
        "`lossbench/conf/experiment/`, `lossbench/conf/protocol/` and the published numbers shipped in "
        "`lossbench/protocols/data/` at every build of the site (`lossbench reproduce --list` prints the "
        "summary in the terminal). Run one with `lossbench reproduce NAME`, compare with "
        "`lossbench report DIR --against NAME`; see [reproducing a paper](../guides/reproduce.md).", "",
        _md("Marks say where a number was read: " + "; ".join(f"{m} {t}" for m, t in catalogue.MARKS.items()))
        + ".",
        "",
        "| preset | paper | dataset, model, epochs | reports | runs | published numbers |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        p, g = r["protocol"], r["grid"]
        n = len(g["loss"]) * len(g["noise"]) * len(g["seed"])
        runs = f"{n} ({len(g['loss'])} losses x {len(g['noise'])} noise x {len(g['seed'])} seeds)"
        if p.published:
            marks = " ".join(sorted({c.mark for c in p.published}))
            published = f"{len(p.published)} cells {marks}, {len(p.compared_sources())} source(s)"
        elif p.reference:
            published = f"none known; lossbench reference ({len(p.reference)} cells)"
        else:
            published = "none known"
        out.append(f"| [`{r['name']}`](#{r['name']}) | {_cell(p.paper)} | `{r['dataset']}`, `{r['model']}`, "
                   f"{r['epochs']} | `{p.metric}` ({p.kind}) | {runs} | {_cell(published)} |")
    out.append("")
    for r in rows:
        p, g = r["protocol"], r["grid"]
        out += [f"## `{r['name']}` {{ #{r['name']} }}", "", f"**{_md(p.paper)}** ({p.dataset})", "",
                f"- run it: `lossbench reproduce {r['name']}` "
                f"(or `lossbench run -m +experiment={r['name']}`)",
                f"- dataset `{r['dataset']}`, model `{r['model']}`, {r['epochs']} epochs; "
                f"reports `{p.metric}` ({p.kind})",
                f"- losses: {', '.join(f'`{x}`' for x in g['loss'])}",
                f"- noise: {', '.join(f'`{x}`' for x in g['noise'])}; seeds: {', '.join(g['seed'])}",
                f"- settings read from: {_md(p.source)}", ""]
        for note in p.notes:
            out += [f"> {_md(note)}", ""]
        if p.published:
            for source, cells in p.compared_sources() or [(None, p.published)]:
                title = source.label if source is not None and source.label != "published" else "Published"
                out += [_md(f"**{title}**" + (f" ({source.source})" if source is not None and source.source
                                              and source.label != "published" else "")), ""]
                out += _cells_table(cells)
        else:
            out += [f"No published numbers: {_md(p.published_note) or 'none known.'}", ""]
        if p.reference:
            out += ["**lossbench's reference** [lossbench]" + (f": {p.reference_note}" if p.reference_note
                                                               else ""), ""]
            out += _cells_table(p.reference)
        if p.claims:
            out += ["**Claims** (`report --against` checks each):", ""]
            out += [_md(f"- {c.text} {c.mark}" + (f" ({c.source})" if c.source else "")) for c in p.claims]
            out.append("")
        for kind in ("experiment", "protocol"):
            path = conf_dir() / kind / f"{r['name']}.yaml"
            if path.exists():
                out += _yaml_block(f"lossbench/conf/{kind}/{r['name']}.yaml", path.read_text())
    return "\n".join(out)


# ---------------------------------------------------------------- commands, benchmarks, architecture


def command_help(command: str) -> str:
    """A command's --help text, from its own parser."""
    main = _import(MODULES["commands"][command]).main
    buffer = io.StringIO()
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        with contextlib.redirect_stdout(buffer), contextlib.suppress(SystemExit):
            main(["--help"])
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old
    return buffer.getvalue().rstrip()


def commands_section() -> str:
    out = ["## Every command's help", "", "Generated from the commands' own parsers.", "",
           "### `lossbench`", "", "```text", _import(MODULES["cli"]).USAGE.rstrip(), "```", ""]
    for command in MODULES["commands"]:
        out += [f"### `lossbench {command}`", "", "```text", command_help(command), "```", ""]
    return "\n".join(out)


def benchmark_pages() -> dict[str, str]:
    """benchmarks/*.md as pages, and an index with each one's title."""
    pages = {}
    rows = []
    for path in sorted((REPO / "benchmarks").glob("*.md")):
        text = path.read_text()
        title = next((ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("#")), path.stem)
        pages[f"benchmarks/{path.name}"] = text
        rows.append(f"| [{_cell(title)}]({path.name}) | `benchmarks/{path.name}` |")
    index = ["# Measured results", "",
             "The benchmark scripts (`scripts/bench_*.py`) write these tables; "
             "`python scripts/assemble_benchmarks.py` joins them into `BENCHMARKS.md`. No GPU was available "
             "when they were measured; every figure is from a 2-core CPU VM shared with other work.", "",
             "| page | file |", "| --- | --- |", *rows, ""]
    pages["benchmarks/index.md"] = "\n".join(index)
    return pages


ARCHITECTURE_MARKERS = ("<!-- generated: layer diagram -->", "<!-- generated: module list -->",
                        "<!-- generated: crossings -->")


def architecture_parts() -> dict[str, str]:
    imports = import_layers.read_imports(REPO)
    diagram = "```mermaid\n" + import_layers.mermaid(imports) + "\n```"
    modules = []
    for layer, members in import_layers.layout(REPO):
        modules += [f"**{layer.title}** (`{layer.key}`)", "", "| module | what it is |", "| --- | --- |"]
        modules += [f"| `{m}` | {_cell(doc)} |" for m, doc in members]
        modules.append("")
    found = import_layers.crossings(imports)
    if not found:
        lines = ["No import goes against the layering today (generated from the code)."]
    else:
        lines = [f"{len(found)} imports go against the layering today (generated from the code):", "",
                 "| import | from layer | to layer | direction | when |", "| --- | --- | --- | --- | --- |"]
    def title(module: str) -> str:
        return import_layers.layer_of(module).title

    lines += [f"| `{i.source}` (line {i.line}) imports `{i.target}` | {title(i.source)} | {title(i.target)} "
              f"| {kind} | {'inside a function' if i.lazy else 'at import'} |" for i, kind in found]
    pairs = import_layers.cycles(imports, 0) + [p for p in import_layers.cycles(imports, 2)
                                                  if p not in import_layers.cycles(imports, 0)]
    lines += ["", "Modules or subpackages that import each other: " +
              ", ".join(f"`{a}` and `{b}`" for a, b in pairs) + "."]
    return dict(zip(ARCHITECTURE_MARKERS, (diagram, "\n".join(modules), "\n".join(lines)), strict=True))


def fill_markers(text: str, parts: dict[str, str]) -> str:
    for marker, content in parts.items():
        if marker not in text:
            raise ValueError(f"marker {marker} is missing from the page")
        text = text.replace(marker, content)
    return text


def pages() -> dict[str, str]:
    """{page path under docs/: its content} of every wholly generated page."""
    out = {"reference/config/index.md": config_index(), "reference/losses.md": losses_page(),
           "reference/presets.md": presets_page()}
    for group in config_groups():
        out[f"reference/config/{slug(group)}.md"] = group_page(group)
    out.update(benchmark_pages())
    return out


FILLED = {  # hand-written pages (docs/) with generated parts
    "reference/commands.md": lambda: {"<!-- generated: command help -->": commands_section()},
    "concepts/architecture.md": architecture_parts,
}


def _gen_files() -> None:
    import mkdocs_gen_files

    for path, text in pages().items():
        with mkdocs_gen_files.open(path, "w") as f:
            f.write(text)
    for path, parts in FILLED.items():
        with mkdocs_gen_files.open(path, "r") as f:
            text = f.read()
        with mkdocs_gen_files.open(path, "w") as f:
            f.write(fill_markers(text, parts()))
        mkdocs_gen_files.set_edit_path(path, path)


def _main(argv: list[str]) -> None:
    if len(argv) == 1 and argv[0] not in ("-h", "--help"):
        out_dir = Path(argv[0])
        for path, text in pages().items():
            (out_dir / path).parent.mkdir(parents=True, exist_ok=True)
            (out_dir / path).write_text(text)
        for path, parts in FILLED.items():
            (out_dir / path).parent.mkdir(parents=True, exist_ok=True)
            (out_dir / path).write_text(fill_markers((REPO / "docs" / path).read_text(), parts()))
        print(f"wrote the generated pages into {out_dir}")
    else:
        print(__doc__)


if __name__ == "__main__":
    _main(sys.argv[1:])
elif __name__ == "<run_path>":  # mkdocs-gen-files runs this file with runpy.run_path
    _gen_files()
