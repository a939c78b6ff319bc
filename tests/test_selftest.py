"""`wsidesk selftest`: one line per check, exit 0 when all pass and 1 with a clear reason otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wsidesk.cli import main

ROOT = Path(__file__).resolve().parents[1]


def lines_by_check(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if name in ("qt", "slide", "torch", "model", "segment"):
            out[name] = rest.split("s  ", 1)[1]  # after the timing column
    return out


def test_selftest_passes_every_check_in_process(qapp, tmp_path, capsys):
    assert main(["selftest", "--data-dir", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    checks = lines_by_check(out)
    assert list(checks) == ["qt", "slide", "torch", "model", "segment"]
    assert all(line.startswith("ok ") for line in checks.values()), out
    assert "main window" in checks["qt"] and "shown and closed" in checks["qt"]
    assert "OpenSlide 4." in checks["slide"] and "vendor aperio" in checks["slide"]
    assert "device cpu" in checks["torch"] or "device cuda" in checks["torch"]
    assert "wsidesk_test_nuclei" in checks["model"]
    cells = int(checks["segment"].split()[1])
    assert cells > 0
    assert out.rstrip().splitlines()[-1].startswith("selftest passed: 5 checks ok")
    assert not (tmp_path / "data").exists()  # it writes nothing outside its temporary folder


def test_selftest_reports_a_missing_bundled_model_and_exits_1(tmp_path, capsys, monkeypatch):
    # What a bundle built without resources/ looks like to the app.
    monkeypatch.setattr("wsidesk.core.segment.models.registry.bundled_models_dir", lambda: tmp_path / "nothing")
    assert main(["selftest", "--skip", "qt", "--data-dir", str(tmp_path / "data")]) == 1
    out = capsys.readouterr().out
    checks = lines_by_check(out)
    assert checks["slide"].startswith("ok ") and checks["torch"].startswith("ok ")
    assert checks["model"].startswith("FAILED: ModelError: the bundled test model is missing at")
    assert str(tmp_path / "nothing") in checks["model"] and "install is incomplete" in checks["model"]
    assert checks["segment"] == "skipped: needs the model check"
    assert out.rstrip().splitlines()[-1].startswith("selftest FAILED (model, segment)")


def test_selftest_names_a_module_the_build_lost(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    assert main(["selftest", "--skip", "qt", "--skip", "slide", "--data-dir", str(tmp_path)]) == 1
    checks = lines_by_check(capsys.readouterr().out)
    assert checks["torch"].startswith("FAILED: cannot import torch")
    assert "bundle is incomplete" in checks["torch"]
    assert checks["model"].startswith("FAILED: cannot import torch")
    assert checks["segment"] == "skipped: needs the slide check"


def test_selftest_json_report(tmp_path, capsys):
    status = main(
        [
            "selftest",
            "--json",
            "--skip",
            "qt",
            "--skip",
            "segment",
            "--model",
            str(tmp_path / "no.pt"),
            "--data-dir",
            str(tmp_path),
        ]
    )
    assert status == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["frozen"] is False and doc["wsidesk"]
    states = {c["name"]: c["status"] for c in doc["checks"]}
    assert states == {"qt": "skipped", "slide": "ok", "torch": "ok", "model": "failed", "segment": "skipped"}
    model = next(c for c in doc["checks"] if c["name"] == "model")
    assert "no such file or folder" in model["detail"]


def test_selftest_fails_qt_when_no_font_is_installed(tmp_path):
    # An empty fontconfig setup is what a bare Linux without fonts-dejavu-core looks like to Qt.
    conf = tmp_path / "fonts.conf"
    conf.write_text('<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig></fontconfig>\n')
    env = {**os.environ, "FONTCONFIG_FILE": str(conf), "QT_QPA_PLATFORM": "offscreen"}
    skips = [a for name in ("slide", "torch", "model", "segment") for a in ("--skip", name)]
    out = subprocess.run(
        [sys.executable, "-m", "wsidesk", "selftest", *skips, "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    line = lines_by_check(out.stdout)["qt"]
    assert line.startswith("FAILED: RuntimeError: Qt found no usable font"), out.stdout
    assert "fonts-dejavu-core" in line


def test_selftest_is_a_documented_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["selftest", "--help"])
    assert exc.value.code == 0
    assert "--skip CHECK" in capsys.readouterr().out


def test_a_missing_system_library_is_named_with_its_debian_package():
    from wsidesk.selftest import _reason

    reason = _reason(ImportError("libGL.so.1: cannot open shared object file: No such file or directory"))
    assert reason.startswith("the system library libGL.so.1 is missing (Debian/Ubuntu: apt-get install libgl1;")
