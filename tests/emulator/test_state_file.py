"""The state file: every change (OAuth included) is on disk before its answer leaves, so an
emulator killed without a clean stop restarts with its companies, rates and connections."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

from .conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, Qbo, unique
from .test_oauth import consent, exchange, refresh

ROOT = Path(__file__).resolve().parents[2]


def _serve(state_file: Path) -> tuple[subprocess.Popen, str]:
    """``python -m qbo_emulator`` on a free loopback port; returns the process and its URL."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qbo_emulator",
            "--port",
            "0",
            "--no-throttle",
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            CLIENT_SECRET,
            "--redirect-uri",
            REDIRECT_URI,
            "--state-file",
            str(state_file),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    base_url = process.stdout.readline().strip()
    if not base_url.startswith("http://127.0.0.1:"):
        process.kill()
        raise AssertionError(f"the emulator did not start: {process.stderr.read()}")
    return process, base_url


def _crash(process: subprocess.Popen) -> None:
    """Kill without a clean stop: nothing gets written on the way out."""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def _api(base_url: str, realm: str, token: str, path: str) -> requests.Response:
    return requests.get(
        f"{base_url}/v3/company/{realm}/{path}",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        timeout=5,
    )


def test_an_oauth_grant_survives_a_crash_and_restart(tmp_path):
    state_file = tmp_path / "state.json"
    process, base_url = _serve(state_file)
    try:
        redirect = consent(base_url)
        query = parse_qs(urlsplit(redirect.headers["Location"]).query)
        realm = query["realmId"][0]
        granted = exchange(base_url, query["code"][0])
        assert granted.status_code == 200, granted.text
        tokens = granted.json()
    finally:
        _crash(process)

    process, base_url = _serve(state_file)
    try:
        assert _api(base_url, realm, tokens["access_token"], "preferences").status_code == 200
        refreshed = refresh(base_url, tokens["refresh_token"])
        assert refreshed.status_code == 200, refreshed.text
        access = refreshed.json()["access_token"]
        assert _api(base_url, realm, access, f"companyinfo/{realm}").status_code == 200
    finally:
        _crash(process)

    # ... and the refresh itself was saved before its answer.
    process, base_url = _serve(state_file)
    try:
        assert _api(base_url, realm, access, "preferences").status_code == 200
    finally:
        _crash(process)


def _saved(path: Path) -> dict:
    return json.loads(path.read_text())


def _connection(saved: dict) -> dict:
    (connection,) = saved["oauth"]["connections"].values()
    return connection


def test_every_kind_of_change_is_written_before_its_answer(make_emulator, tmp_path):
    path = tmp_path / "state.json"
    emu = make_emulator(state_file=str(path))
    base = emu.base_url
    realm = emu.realm_ids[0]

    redirect = consent(base, realm=realm)
    code = parse_qs(urlsplit(redirect.headers["Location"]).query)["code"][0]
    assert code in _saved(path)["oauth"]["codes"]

    tokens = exchange(base, code).json()
    saved = _saved(path)
    assert saved["oauth"]["codes"][code]["used"] is True
    assert tokens["refresh_token"] in saved["oauth"]["refresh"]
    assert tokens["access_token"] in saved["oauth"]["access"]

    refreshed = refresh(base, tokens["refresh_token"]).json()
    assert refreshed["access_token"] in _saved(path)["oauth"]["access"]

    name = unique("Saved")
    Qbo(emu, realm, tokens["access_token"]).customer(DisplayName=name)
    customers = _saved(path)["realms"][realm]["objects"]["Customer"].values()
    assert name in {c["DisplayName"] for c in customers}

    requests.post(f"{base}/_emulator/clock", json={"advance": 3600}, timeout=5)
    assert _saved(path)["clock_offset"] >= 3600
    requests.post(
        f"{base}/_emulator/realms/{realm}/ExchangeRate",
        json={"SourceCurrencyCode": "EUR", "Rate": 1.25, "AsOfDate": "2025-02-01"},
        timeout=5,
    )
    assert _saved(path)["realms"][realm]["rates"]["EUR"]["2025-02-01"]["Rate"] == 1.25

    requests.post(
        f"{base}/v2/oauth2/tokens/revoke",
        json={"token": refreshed["refresh_token"]},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=5,
    )
    assert _connection(_saved(path))["revoked"] is True
    # Written by replacing the file, never in place: no temporary file is left behind.
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
