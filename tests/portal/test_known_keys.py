"""Keys published in the repository: the list is complete, and each one is refused."""

from __future__ import annotations

import re
import secrets
import subprocess
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from portal import bootstrap_env
from portal.envcheck import SECRET_KEY_COMMAND, TOKEN_KEY_COMMAND, refuse_known_keys
from portal.known_keys import KNOWN_KEYS, fernet_key_bytes, is_known_key

ROOT = Path(__file__).resolve().parents[2]

# 32 bytes of base64 (either alphabet), standing alone: a Fernet key, wherever it is written.
FERNET_SHAPED = re.compile(r"(?<![A-Za-z0-9_+/=-])[A-Za-z0-9_+/-]{43}=(?![A-Za-z0-9_+/=-])")
# Where an assignment may start; also at the end of a longer name, as in DJANGO_SECRET_KEY.
NAMES = re.compile(r"SECRET_KEY|TOKEN_ENCRYPTION_KEYS")
# A setting's name, then what is assigned to it in .env, shell, Python or a dict:
# `NAME=value`, `NAME = "value"`, `"NAME": "value"`, `setdefault("NAME", "value")`.
ASSIGNED = re.compile(
    r"(?P<name>SECRET_KEY|TOKEN_ENCRYPTION_KEYS)(?![A-Za-z0-9_])[\"']?[ \t]*[=:,][ \t]*"
    r"(?:[rbuf]?(?P<quote>[\"'])(?P<quoted>[^\"'\n]*)(?P=quote)|(?P<bare>[^\s\"'#]+))"
)
# Not a key but a stand-in for one: `SECRET_KEY=<...>`, `{key}`, `${SECRET_KEY}`.
PLACEHOLDER = re.compile(r"[<>{}\s]")


def key_candidates(text: str) -> list[tuple[int, str]]:
    """(line, value) for every value in `text` that could serve as one of Ledgerlink's keys.

    SECRET_KEY values of 32 characters or more (settings refuse shorter ones anyway), every
    Fernet key among TOKEN_ENCRYPTION_KEYS values, and every Fernet-shaped string anywhere.
    """
    found = []
    for match in FERNET_SHAPED.finditer(text):
        if fernet_key_bytes(match[0]) is not None:
            found.append((match.start(), match[0]))
    # Matched at each name in turn, so `"SECRET_KEY": "SECRET_KEY=..."` yields the inner one.
    for name in NAMES.finditer(text):
        match = ASSIGNED.match(text, name.start())
        if match is None:
            continue
        value = match["quoted"] if match["quote"] else match["bare"]
        if match["name"] == "TOKEN_ENCRYPTION_KEYS":
            found += [
                (match.start(), part.strip())
                for part in value.split(",")
                if fernet_key_bytes(part) is not None
            ]
        elif len(value) >= 32 and not PLACEHOLDER.search(value) and "SECRET_KEY" not in value:
            found.append((match.start(), value))
    return sorted({(text.count("\n", 0, start) + 1, value) for start, value in found})


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, timeout=60, check=False
    )
    if listed.returncode != 0:
        pytest.fail(
            "This test reads the tracked files through `git ls-files`; run it in a git checkout "
            f"({listed.stderr.decode(errors='replace').strip()})."
        )
    paths = [ROOT / name for name in listed.stdout.decode().split("\0") if name]
    return [path for path in paths if path.is_file()]


def test_every_key_written_in_the_repository_is_refused():
    unlisted = []
    scanned = 0
    for path in tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # screenshots and other binary files
            continue
        scanned += 1
        for line, value in key_candidates(text):
            if not is_known_key(value):
                unlisted.append(f"{path.relative_to(ROOT)}:{line}: {value}")
    assert scanned > 100  # the whole repository, not an empty listing
    assert not unlisted, (
        "Key-shaped values in the repository that start-up would accept with DEBUG off. Add "
        "each to KNOWN_KEYS in portal/known_keys.py, or make the value at run time "
        "(secrets.token_urlsafe(50), Fernet.generate_key()):\n" + "\n".join(unlisted)
    )


def test_the_scan_finds_keys_in_each_way_the_repository_writes_them():
    secret = secrets.token_urlsafe(50)
    fernet = Fernet.generate_key().decode()
    other = Fernet.generate_key().decode()
    standard = fernet.replace("-", "+").replace("_", "/")
    written = {
        f"SECRET_KEY={secret}": [secret],
        f'os.environ.setdefault("SECRET_KEY", "{secret}")': [secret],
        f"    'SECRET_KEY': '{secret}',": [secret],
        f'SECRET_KEY = "{secret}"': [secret],
        f'override_settings(SECRET_KEY="{secret}")': [secret],
        f'"SECRET_KEY": "SECRET_KEY={secret}"': [secret],
        f"TOKEN_ENCRYPTION_KEYS={fernet},{other}": [fernet, other],
        f'TOKEN_ENCRYPTION_KEYS = "{fernet}, {other}"': [fernet, other],
        f'key_a = "{fernet}"': [fernet],
        f"signature == {standard!r}": [standard],
    }
    for text, values in written.items():
        assert sorted(value for _, value in key_candidates(text)) == sorted(values), text


@pytest.mark.parametrize(
    "text",
    [
        "SECRET_KEY=",
        "SECRET_KEY=<the output of: python -c 'import secrets'>",
        'SECRET_KEY = config.secret_key("SECRET_KEY")',
        'raise fail("SECRET_KEY", "is shorter than 32 characters")',
        "SECRET_KEY=${SECRET_KEY_FROM_THE_VAULT_OF_THIS_DEPLOYMENT}",
        "TOKEN_ENCRYPTION_KEYS=not-a-key",
        "TOKEN_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), old]",
        "intuit.dsnBgbseACLLRZNxo2dfc2Q8wnP4oSmkL3pBgUDa0d9X1ZonM=",
    ],
)
def test_the_scan_passes_over_what_is_no_key(text):
    assert key_candidates(text) == []


@pytest.mark.parametrize("key", sorted(KNOWN_KEYS))
def test_every_known_key_is_refused_for_both_settings(key):
    with pytest.raises(ImproperlyConfigured, match="Setting SECRET_KEY is a key published"):
        refuse_known_keys("SECRET_KEY", [key])
    fresh = Fernet.generate_key().decode()
    with pytest.raises(
        ImproperlyConfigured,
        match="Setting TOKEN_ENCRYPTION_KEYS has a key in position 2 that is published",
    ):
        refuse_known_keys("TOKEN_ENCRYPTION_KEYS", [fresh, key])


def test_a_known_fernet_key_is_refused_however_it_is_spelled():
    # Fernet decodes either base64 alphabet and skips stray characters: all one key.
    key = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
    for spelling in (key, key.replace("-", "+").replace("_", "/"), key[:20] + "." + key[20:]):
        assert fernet_key_bytes(spelling) == fernet_key_bytes(key)
        assert is_known_key(spelling), spelling
        assert is_known_key(f" {spelling} ")


def test_fresh_keys_are_not_refused():
    fresh_secret = secrets.token_urlsafe(50)
    fresh_fernet = Fernet.generate_key().decode()
    assert not is_known_key(fresh_secret)
    assert not is_known_key(fresh_fernet)
    refuse_known_keys("SECRET_KEY", [fresh_secret])
    refuse_known_keys("TOKEN_ENCRYPTION_KEYS", [fresh_fernet, Fernet.generate_key().decode()])


def test_the_demo_env_gets_fresh_keys(tmp_path):
    env_file = tmp_path / ".env"
    assert bootstrap_env.main(env_file) == 0
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    assert not is_known_key(values["SECRET_KEY"])
    assert fernet_key_bytes(values["TOKEN_ENCRYPTION_KEYS"]) is not None
    assert not is_known_key(values["TOKEN_ENCRYPTION_KEYS"])


def test_env_example_shows_the_commands_the_start_up_errors_show():
    example = (ROOT / ".env.example").read_text()
    assert SECRET_KEY_COMMAND in example
    assert TOKEN_KEY_COMMAND in example
