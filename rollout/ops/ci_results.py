"""CI test results as the Pushgateway takes them: the pass ratio of a suite.

``python -m rollout.ops.ci_results build/junit.xml --suite unit`` prints the
exposition text that CI pushes to ``<pushgateway>/metrics/job/rollout-ci/suite/unit``;
the CITestPassRatioLow alert reads it.
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from rollout.model import conventions
from rollout.model.errors import printable


def pass_ratio(junit_xml: Path) -> tuple[float, int]:
    """(passed / run, run) over every testsuite of a JUnit XML report; skipped tests do not count."""
    root = ElementTree.parse(junit_xml).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    run = failed = 0
    for suite in suites:
        tests = int(suite.get("tests", 0))
        skipped = int(suite.get("skipped", 0))
        run += tests - skipped
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    if run == 0:
        raise ValueError(f"{junit_xml}: no test ran")
    return (run - failed) / run, run


def exposition(ratio: float, tests: int) -> str:
    name = conventions.CI_PASS_RATIO
    return (
        f"# HELP {name} Share of the suite's tests that passed in the last CI run.\n"
        f"# TYPE {name} gauge\n{name} {round(ratio, 6)}\n"
        f"# HELP ci_tests_run Tests run in the last CI run.\n# TYPE ci_tests_run gauge\nci_tests_run {tests}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("junit_xml", type=Path)
    args = parser.parse_args(argv)
    try:
        ratio, tests = pass_ratio(args.junit_xml)
    except (OSError, ValueError, ElementTree.ParseError) as err:
        print(f"ci_results: {printable(err)}", file=sys.stderr)  # one line, whatever the path holds
        return 2
    sys.stdout.write(exposition(ratio, tests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
