"""Assemble BENCHMARKS.md from the per-topic result files in benchmarks/.

Each benchmark script writes its own file (benchmarks/losses.md, reweight.md,
throughput.md, ...); this joins them, in a fixed order, under one header.

    python scripts/assemble_benchmarks.py
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["overhead.md", "losses.md", "reweight.md", "throughput.md"]
HEADER = """# lossbench benchmarks

Assembled by `python scripts/assemble_benchmarks.py` from `benchmarks/*.md`,
which the benchmark scripts write (each section names its command). No GPU was
available when these were measured; every figure is from a 2-core CPU VM.
"""


def main() -> None:
    files = [ROOT / "benchmarks" / name for name in ORDER]
    files += sorted(p for p in (ROOT / "benchmarks").glob("*.md") if p.name not in ORDER)
    parts = [HEADER]
    for path in files:
        if path.exists():
            text = path.read_text().strip()
            # demote headings one level so every file becomes a section
            parts.append("\n".join("#" + ln if ln.startswith("#") else ln for ln in text.splitlines()))
    (ROOT / "BENCHMARKS.md").write_text("\n\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
