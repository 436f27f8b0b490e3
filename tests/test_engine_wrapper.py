"""rollout.engine.wrapper: the modules the entry point imports are imported ahead of the engine's call."""

from __future__ import annotations

import sys
import textwrap

from rollout.engine import wrapper


def test_the_entry_points_top_level_absolute_imports_are_the_ones_imported_ahead(tmp_path):
    entry = tmp_path / "__main__.py"
    entry.write_text(textwrap.dedent("""
        import json, os.path
        from rollout.engine.program import run
        from . import sibling
        if True:
            import decimal

        def later():
            import fractions
        run()
    """))
    assert wrapper._entry_imports(entry) == ["json", "os.path", "rollout.engine.program"]


def test_an_entry_point_that_cannot_be_read_or_parsed_imports_nothing_ahead(tmp_path):
    assert wrapper._entry_imports(tmp_path / "missing.py") == []
    broken = tmp_path / "__main__.py"
    broken.write_text("import (\n")
    assert wrapper._entry_imports(broken) == []


def test_prewarm_imports_the_modules_and_leaves_a_failing_one_to_the_program(tmp_path, monkeypatch):
    (tmp_path / "warm_ok.py").write_text("VALUE = 1\n")
    (tmp_path / "warm_broken.py").write_text("raise RuntimeError('the real error')\n")
    (tmp_path / "warm_after.py").write_text("VALUE = 2\n")
    entry = tmp_path / "__main__.py"
    entry.write_text("import warm_ok\nimport warm_broken\nimport warm_after\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("warm_ok", "warm_broken", "warm_after"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    wrapper._prewarm(entry)
    assert sys.modules["warm_ok"].VALUE == 1
    # The broken module is not left half-imported: the program's import raises its own error.
    assert "warm_broken" not in sys.modules
    # Nothing after a failure is imported ahead: the program imports it in its own order.
    assert "warm_after" not in sys.modules
    for name in ("warm_ok",):
        monkeypatch.delitem(sys.modules, name, raising=False)
