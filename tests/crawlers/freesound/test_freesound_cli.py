"""``python -m crawlers.freesound_api``: downloads and searches from the command line,
one-line errors and their exit codes, and no trace of the key in any file written."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from download_helpers import FAST, REPO, audio_files
from fake_freesound import FakeFreesound

from crawlers.freesound_api import main


def _params_file(tmp_path: Path, **freesound: Any) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["freesound"].update({**FAST, **freesound})
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def _cli(argv: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capfd.readouterr()
    return code, out, err


def test_cli_download_and_summary(
    freesound_env: FakeFreesound, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    freesound_env.clear_quirks()
    params = _params_file(tmp_path, page_size=150)
    out_dir = tmp_path / "raw"
    argv = ["--params", str(params), "download", "--classes", "kick", "--max-per-class", "3"]
    code, out, err = _cli([*argv, "--out", str(out_dir), "--no-progress"], capfd)
    assert code == 0, err
    assert out.strip().splitlines()[-1].startswith("freesound: kick 3/3; 3 downloaded")
    assert audio_files(out_dir) == ["1001.mp3", "1002.mp3", "1010.mp3"]
    code, out, err = _cli([*argv, "--out", str(out_dir), "--no-progress"], capfd)
    assert code == 0 and "0 downloaded, 3 already stored" in out and "0 API requests" in out


def test_cli_search_prints_json_lines(
    freesound_env: FakeFreesound, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    params = _params_file(tmp_path, page_size=150)
    code, out, err = _cli(["--params", str(params), "search", "--class", "kick", "--all"], capfd)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == [
        1001,
        1002,
        1005,
        1006,
        1009,
        1010,
        1011,
        1012,
        1013,
        1014,
        2006,
    ]
    assert {r["id"]: r["skip"] for r in rows}[1005] == "ai_opt_out"
    code, out, _ = _cli(
        ["--params", str(params), "search", "--class", "kick", "--limit", "2"], capfd
    )
    assert [json.loads(x)["id"] for x in out.splitlines()] == [1001, 1002]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"FREESOUND_API_KEY": ""}, "FREESOUND_API_KEY is not set: create a key at"),
        ({"FREESOUND_API_KEY": "bad-key-value"}, "Freesound refused the API key (HTTP 401"),
    ],
)
def test_cli_key_problems_are_one_line_exit_2(
    fake_freesound: FakeFreesound,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    env: dict[str, str],
    expected: str,
) -> None:
    monkeypatch.setenv("FREESOUND_API_URL", fake_freesound.url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    params = _params_file(tmp_path)
    argv = ["--params", str(params), "download", "--out", str(tmp_path / "raw"), "--no-progress"]
    code, out, err = _cli(argv, capfd)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err
    assert "Traceback" not in err and "bad-key-value" not in out + err
    assert not list((tmp_path / "raw").glob("*.mp3")) if (tmp_path / "raw").exists() else True


def test_cli_api_error_is_one_line_exit_1(
    freesound_env: FakeFreesound, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    freesound_env.fail("/apiv2/search/", 400, times=1, detail="Invalid filter at 'x'")
    params = _params_file(tmp_path)
    argv = ["--params", str(params), "download", "--out", str(tmp_path / "raw"), "--no-progress"]
    code, _, err = _cli(argv, capfd)
    assert code == 1
    assert err == "error: Freesound API: HTTP 400: Invalid filter at 'x'\n"


def test_key_value_is_in_no_file_written(
    freesound_env: FakeFreesound, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    params = _params_file(tmp_path)
    argv = ["--params", str(params), "-v", "download", "--classes", "kick,snare"]
    code, out, err = _cli([*argv, "--out", str(tmp_path / "raw"), "--no-progress"], capfd)
    assert code == 0, err
    key = freesound_env.key.encode()
    assert key not in (out + err).encode()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 5
    for path in written:
        assert key not in path.read_bytes(), path
    assert os.environ["FREESOUND_API_KEY"] == freesound_env.key
