"""The "Interrupting, resuming" section of the documentation (docs/concepts/lifecycle.md, moved there
from the README): every promise names the tests that check it, and every named test exists."""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).parent
PAGE = HERE.parents[1] / "docs" / "concepts" / "lifecycle.md"


def _section() -> str:
    text = PAGE.read_text()
    start = text.index("## Interrupting, resuming")
    return text[start:text.index("\n## ", start + 1)]


def test_every_promise_names_existing_tests():
    promises = re.split(r"\n(?=\d+\. \*\*)", _section())[1:]
    assert len(promises) >= 10
    for promise in promises:
        refs = re.findall(r"\[test: ([\w.]+)::(\w+)\]", promise)
        assert refs, promise[:80]
        for filename, name in refs:
            source = (HERE / filename).read_text()
            assert re.search(rf"^def {name}\(", source, re.M), f"{filename}::{name}"
