"""CI's pass ratio, from a real pytest JUnit report, as the Pushgateway takes it."""

from __future__ import annotations

import subprocess
import sys

from rollout.ops.ci_results import exposition, pass_ratio


def test_the_pass_ratio_of_a_real_pytest_run(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n"
        "def test_a(): pass\n"
        "def test_b(): pass\n"
        "def test_c(): pass\n"
        "def test_d(): assert False\n"
        "@pytest.mark.skip(reason='not run')\n"
        "def test_e(): pass\n"
    )
    report = tmp_path / "junit.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", str(tmp_path / "test_sample.py")], cwd=tmp_path, capture_output=True)
    ratio, run = pass_ratio(report)
    assert (ratio, run) == (0.75, 4)
    text = exposition(ratio, run)
    assert "ci_test_pass_ratio 0.75\n" in text and "# TYPE ci_test_pass_ratio gauge" in text


def test_a_report_with_no_test_run_is_an_error(tmp_path):
    report = tmp_path / "junit.xml"
    report.write_text('<testsuites><testsuite name="x" tests="0" failures="0" errors="0" skipped="0"/></testsuites>')
    result = subprocess.run([sys.executable, "-m", "rollout.ops.ci_results", str(report)], capture_output=True, text=True)
    assert result.returncode == 2 and "no test ran" in result.stderr


def test_a_report_path_with_a_newline_is_named_on_one_escaped_line(tmp_path, capsys):
    from rollout.ops.ci_results import main

    path = tmp_path / "junit\nci_results: ok\x1b[2K.xml"
    path.write_text("<testsuite tests='0'/>")
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and all(ch.isprintable() for ch in err.rstrip("\n")), repr(err)
    assert "junit\\nci_results: ok\\x1b[2K.xml" in err
