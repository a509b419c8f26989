"""The layers of lossbench, read from the code's real imports.

Every module of ``lossbench/`` and ``hydra_plugins/`` is parsed with ``ast``; each ``import`` of a
lossbench module (at the top of a file, or inside a function: ``lazy``) is one edge. ``LAYERS``
maps module paths to layers, from the command line at the top to the shared foundation at the
bottom; a layer may import the layers below it. This script prints the layer graph and every
import that goes the other way (a lower layer importing a higher one) or sideways (between two
layers of the same rank); the documentation site draws the same graph (scripts/docs_pages.py,
docs/concepts/architecture.md).

    python scripts/import_layers.py              # the layer graph and the crossings
    python scripts/import_layers.py --mermaid    # the diagram the site shows

When modules move, only ``LAYERS`` changes (module path prefixes; the longest prefix wins).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("lossbench", "hydra_plugins")


@dataclass(frozen=True)
class Layer:
    key: str
    title: str
    rank: int  # 0 = top; a layer may import layers of a higher rank number (lower down)
    modules: tuple[str, ...]  # module path prefixes (dotted)


# The layers, top to bottom (each rank its own layer: no two layers are peers today).
LAYERS = (
    Layer("cli", "command line", 0, (
        "lossbench.cli", "lossbench.__main__", "lossbench.lifecycle.evaluate_command", "lossbench.report.cli",
        "lossbench.protocols.reproduce")),
    Layer("lifecycle", "the run's lifecycle", 1, ("lossbench.lifecycle", "hydra_plugins")),
    Layer("reports", "reports and tracking", 2, (
        "lossbench.report", "lossbench.protocols", "lossbench.tracking")),
    Layer("trainer", "the trainer and objective", 3, ("lossbench.train",)),
    Layer("plugins", "the plug-in families", 4, (
        "lossbench.losses", "lossbench.noise", "lossbench.reweight", "lossbench.detect",
        "lossbench.calibrate", "lossbench.adversarial", "lossbench.models", "lossbench.data")),
    Layer("metrics", "metrics", 5, ("lossbench.metrics",)),
    Layer("foundation", "shared foundation", 6, ("lossbench", "lossbench.core", "lossbench.conf")),
)
# The plug-in families, as the diagram names them inside their layer.
FAMILIES = ("losses", "noise", "reweight", "detect", "calibrate", "adversarial", "models", "data")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module
    line: int
    lazy: bool  # inside a function (runs when called), not at import time


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def module_files(root: Path = REPO) -> dict[str, Path]:
    """{dotted module name: file} of every module of the packages."""
    files = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            files[module_name(path, root)] = path
    return files


def _resolve(module: str, names: list[str], known: set[str]) -> list[str]:
    """``from module import a, b``: the modules imported (``module.a`` where that is a module)."""
    found = [f"{module}.{n}" for n in names if f"{module}.{n}" in known]
    if len(found) < len(names):
        found.append(module)
    return found


def _lazy_lines(tree: ast.AST) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    lines.add(inner.lineno)
    return lines


def read_imports(root: Path = REPO) -> list[Import]:
    """Every import of a lossbench or hydra_plugins module by another one."""
    files = module_files(root)
    known = set(files)
    imports = []
    for name, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        lazy = _lazy_lines(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = _resolve(module, [a.name for a in node.names], known)
            for target in targets:
                while target and target not in known:  # `import lossbench.losses.base as b` etc.
                    target = target.rpartition(".")[0]
                if target and target != name:
                    imports.append(Import(name, target, node.lineno, node.lineno in lazy))
    return sorted(set(imports), key=lambda i: (i.source, i.line, i.target))


def layer_of(module: str) -> Layer:
    """The layer whose longest module prefix matches ``module``."""
    best, length = None, -1
    for layer in LAYERS:
        for prefix in layer.modules:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = layer, len(prefix)
    if best is None:
        raise KeyError(f"{module} is in no layer; add it to LAYERS in scripts/import_layers.py")
    return best


def family_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FAMILIES else None


def crossings(imports: list[Import]) -> list[tuple[Import, str]]:
    """The imports that break the layering: ("upward" | "sideways", with the import)."""
    found = []
    for imp in imports:
        a, b = layer_of(imp.source), layer_of(imp.target)
        if a is b:
            continue
        if b.rank < a.rank:
            found.append((imp, "upward"))
        elif b.rank == a.rank:
            found.append((imp, "sideways"))
    return [(imp, kind) for imp, kind in found]


def cycles(imports: list[Import], level: int = 0) -> list[tuple[str, str]]:
    """Pairs of modules (``level`` 0) or of subpackages (``level`` 2: ``lossbench.report``) that import
    each other, at the top of a file or lazily."""
    def cut(name: str) -> str:
        return ".".join(name.split(".")[:level]) if level else name

    edges = {(cut(i.source), cut(i.target)) for i in imports if cut(i.source) != cut(i.target)}
    return sorted((a, b) for a, b in edges if (b, a) in edges and a < b)


def family_edges(imports: list[Import]) -> Counter:
    """{(family, family): number of imports} between plug-in families (allowed: they are peers)."""
    counts: Counter = Counter()
    for imp in imports:
        a, b = family_of(imp.source), family_of(imp.target)
        if a and b and a != b:
            counts[(a, b)] += 1
    return counts


def layer_edges(imports: list[Import]) -> Counter:
    """{(layer key, layer key): number of imports} between different layers."""
    counts: Counter = Counter()
    for imp in imports:
        a, b = layer_of(imp.source).key, layer_of(imp.target).key
        if a != b:
            counts[(a, b)] += 1
    return counts


def mermaid(imports: list[Import]) -> str:
    """A Mermaid flowchart of the layers: solid arrows go down, red dashed ones break the layering."""
    bad = {(layer_of(i.source).key, layer_of(i.target).key) for i, _ in crossings(imports)}
    lines = ["flowchart TB"]
    for layer in LAYERS:
        if layer.key == "plugins":
            lines.append(f'  subgraph plugins["{layer.title}"]')
            lines.append("    direction LR")
            lines += [f'    {f}["{f}"]' for f in FAMILIES]
            lines.append("  end")
        else:
            lines.append(f'  {layer.key}["{layer.title}"]')
    link = 0
    styles = []
    for (a, b), n in sorted(family_edges(imports).items()):
        lines.append(f"  {a} -->|{n}| {b}")
        styles.append(f"  linkStyle {link} stroke:#999,stroke-width:1px")
        link += 1
    for (a, b), n in sorted(layer_edges(imports).items(), key=lambda kv: (layer_rank(kv[0][0]), kv[0])):
        arrow = "-.->" if (a, b) in bad else "-->"
        lines.append(f"  {a} {arrow}|{n}| {b}")
        if (a, b) in bad:
            styles.append(f"  linkStyle {link} stroke:#d62728,stroke-width:2px")
        link += 1
    return "\n".join(lines + styles)


def layer_rank(key: str) -> int:
    return next(layer.rank for layer in LAYERS if layer.key == key)


def first_paragraph(path: Path) -> str:
    """A module's docstring's first paragraph, as one line (empty when it has none)."""
    doc = (ast.get_docstring(ast.parse(path.read_text())) or "").strip()
    return " ".join(doc.split("\n\n")[0].split())


def layout(root: Path = REPO) -> list[tuple[Layer, list[tuple[str, str]]]]:
    """Each layer with its modules and their docstrings' first paragraphs (the architecture page)."""
    files = module_files(root)
    out = []
    for layer in LAYERS:
        modules = [(m, first_paragraph(p)) for m, p in files.items() if layer_of(m) is layer]
        out.append((layer, modules))
    return out


def describe(imports: list[Import]) -> str:
    """The layer graph and its crossings, as text."""
    out = ["layers (top to bottom; a layer may import those below it):"]
    for layer in LAYERS:
        out.append(f"  {layer.rank} {layer.key:10} {layer.title}: {', '.join(layer.modules)}")
    out.append("\nimports between layers (count):")
    for (a, b), n in sorted(layer_edges(imports).items(), key=lambda kv: (layer_rank(kv[0][0]), kv[0])):
        out.append(f"  {a:10} -> {b:10} {n}")
    found = crossings(imports)
    out.append(f"\nimports against the layering: {len(found)}")
    for imp, kind in found:
        when = "lazy" if imp.lazy else "top"
        out.append(f"  {kind:8} {imp.source}:{imp.line} ({layer_of(imp.source).key}) -> {imp.target} "
                   f"({layer_of(imp.target).key}) [{when}]")
    out.append("\nimports between plug-in families (peers):")
    out += [f"  {a:11} -> {b:11} {n}" for (a, b), n in sorted(family_edges(imports).items())]
    for what, level in (("modules", 0), ("subpackages", 2)):
        pairs = cycles(imports, level)
        out.append(f"\n{what} that import each other: {len(pairs)}")
        out += [f"  {a} <-> {b}" for a, b in pairs]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mermaid", action="store_true", help="print the Mermaid diagram only")
    args = parser.parse_args(argv)
    imports = read_imports()
    print(mermaid(imports) if args.mermaid else describe(imports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
