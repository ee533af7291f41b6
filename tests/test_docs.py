"""Documentation generated from the registry stays in step with it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_metrics_catalogue_doc_is_current() -> None:
    spec = importlib.util.spec_from_file_location("metrics_doc", ROOT / "scripts/metrics_doc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = module.render()
    actual = (ROOT / "docs/metrics.md").read_text()
    assert actual == expected, "run: .venv/bin/python scripts/metrics_doc.py > docs/metrics.md"
