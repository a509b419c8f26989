"""The documentation site: it builds with --strict (broken links, anchors and references fail), its
generated references name every loss, preset and config option, and the layer map
(scripts/import_layers.py) places every module and finds an import that goes the wrong way."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SITE_PACKAGES = ("mkdocs", "material", "mkdocstrings_handlers.python", "mkdocs_gen_files")


def _script(name: str):
    """scripts/NAME.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"_docs_{name}", REPO / "scripts" / f"{name}.py")
    if spec.name in sys.modules:
        return sys.modules[spec.name]
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _missing_site_packages() -> list[str]:
    missing = []
    for name in SITE_PACKAGES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(name)
    return missing


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path):
    missing = _missing_site_packages()
    if missing:
        pytest.skip(f"the documentation packages are not installed ({', '.join(missing)}): "
                    "pip install '.[docs]'")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "DISABLE_MKDOCS_2_WARNING": "true", "NO_MKDOCS_2_WARNING": "1", "OMP_NUM_THREADS": "1"}
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    losses = (site / "reference" / "losses" / "index.html").read_text()
    assert 'id="nce_rce"' in losses and "Ma et al. 2020" in losses
    architecture = (site / "concepts" / "architecture" / "index.html").read_text()
    assert 'class="mermaid"' in architecture and "<!-- generated" not in architecture
    api = (site / "reference" / "api" / "index.html").read_text()
    assert "lossbench.losses.base.Loss" in api and "compute" in api


def test_the_references_name_every_loss_preset_and_option():
    from lossbench.losses import LOSSES
    from lossbench.protocols.catalogue import preset_names

    docs = _script("docs_pages")
    pages = docs.pages()
    losses = pages["reference/losses.md"]
    for name in LOSSES.names():
        assert f"{{ #{name} }}" in losses and f"](#{name})" in losses, name
    presets = pages["reference/presets.md"]
    for name in preset_names():
        assert f"{{ #{name} }}" in presets, name
    index = pages["reference/config/index.md"]
    conf = REPO / "lossbench" / "conf"
    groups = sorted({p.parent.relative_to(conf).as_posix() for p in conf.rglob("*.yaml") if p.parent != conf})
    assert groups == docs.config_groups()
    for group in groups:
        page = pages[f"reference/config/{docs.slug(group)}.md"]
        for option in (p.stem for p in (conf / group).glob("*.yaml")):
            assert f"{{ #{option} }}" in page, f"{group}/{option}"
            assert f"]({docs.slug(group)}.md#{option})" in index, f"{group}/{option}"
    # the home page reaches the three references in one click
    home = (REPO / "docs" / "index.md").read_text()
    for target in ("reference/config/index.md", "reference/losses.md", "reference/presets.md"):
        assert f"]({target})" in home


def test_the_config_reference_shows_the_validation_schema():
    docs = _script("docs_pages")
    trainer = docs.group_page("trainer")
    assert "| `trainer.progress` | one of auto, rich, plain, none |" in trainer  # a RULES entry
    assert "| `trainer.epochs` | a positive integer |" in trainer               # a RULES range
    noise = docs.group_page("noise")
    rate = "| `noise.rate` | `0.6` | a number in [0, 1) (the probability that a label is corrupted) |"
    assert rate in noise                                                         # a target's signature


def test_every_module_is_in_a_layer():
    layers = _script("import_layers")
    imports = layers.read_imports()
    assert len(imports) > 100
    for module in layers.module_files():
        layers.layer_of(module)  # KeyError names a module LAYERS forgot
    assert "```mermaid" in _script("docs_pages").architecture_parts()["<!-- generated: layer diagram -->"]


def test_an_import_against_the_layering_is_found(tmp_path):
    layers = _script("import_layers")
    package = tmp_path / "lossbench"
    for path, text in {
        "__init__.py": "",
        "metrics/__init__.py": "",
        "metrics/summary.py": "from lossbench.train import trainer\n",   # metrics -> trainer: upward
        "train/__init__.py": "",
        "train/trainer.py": "def f():\n    from ..metrics import summary\n",  # trainer -> metrics: allowed
        "core/__init__.py": "",
        "core/io.py": "def f():\n    import lossbench.lifecycle.run\n",  # foundation -> lifecycle, lazily
        "lifecycle/__init__.py": "",
        "lifecycle/run.py": "import lossbench.report.collect\n",         # lifecycle -> reports: allowed
        "report/__init__.py": "",
        "report/collect.py": "",
    }.items():
        (package / path).parent.mkdir(parents=True, exist_ok=True)
        (package / path).write_text(text)
    (tmp_path / "hydra_plugins").mkdir()
    imports = layers.read_imports(tmp_path)
    found = {(i.source, i.target, kind, i.lazy) for i, kind in layers.crossings(imports)}
    assert found == {("lossbench.metrics.summary", "lossbench.train.trainer", "upward", False),
                     ("lossbench.core.io", "lossbench.lifecycle.run", "upward", True)}
    assert ("lossbench.train.trainer", "lossbench.metrics.summary") in {(i.source, i.target) for i in imports}


def test_no_module_imports_a_higher_layer():
    """Every import of lossbench's own modules, at the top of a file or inside a function, goes down
    the layers of scripts/import_layers.py (or stays in its layer); and no two modules import each
    other, except the command line and ``lossbench reproduce`` (which runs presets through it)."""
    layers = _script("import_layers")
    imports = layers.read_imports()
    wrong = [f"{i.source}:{i.line} ({layers.layer_of(i.source).key}) imports {i.target} "
             f"({layers.layer_of(i.target).key}){' lazily' if i.lazy else ''}: {kind}"
             for i, kind in layers.crossings(imports)]
    assert wrong == []
    assert layers.cycles(imports) == [("lossbench.cli", "lossbench.protocols.reproduce")]


def test_the_readme_links_to_files_that_exist():
    """The README's relative links work on GitHub: each names a file or folder of the checkout."""
    import re

    text = (REPO / "README.md").read_text()
    links = [t for t in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text) if "://" not in t]
    assert len(links) >= 15
    for target in links:
        assert (REPO / target).exists(), target
    assert len(text.splitlines()) <= 250
