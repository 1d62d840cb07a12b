"""No password reaches a line we print: every storage error path, with the secret in every
position of a URL or DSN (issue 14, class "secrets")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dse.cli import main
from dse.secrets import _secrets_of, redact_url, scrub_secrets

SECRET = "S3CRET-x"

URLS = [
    f"postgresql://dse:pa/ss-{SECRET}@127.0.0.1:notaport/studies",   # '/' in the password
    f"postgresql://dse:pa@ss-{SECRET}@127.0.0.1:1/studies",          # '@' in the password
    f"postgresql://dse:pa:ss?{SECRET}@127.0.0.1:1/studies",          # ':' and '?'
    f"postgresql://dse:{SECRET}@127.0.0.1:1/studies",
    f"postgresql://dse@127.0.0.1:1/studies?sslpassword={SECRET}",
    f"postgresql://dse:x@127.0.0.1:1/studies?sslmode=disable&password={SECRET}",
    f"postgresql://dse:{SECRET}@[::1/studies",                        # malformed host
    f"redis://u:pa/ss-{SECRET}@h/0",                                  # unsupported scheme
    f"mysql+nosuchdriver://u:{SECRET}@h/db",                          # unknown driver
    f"mysql+pymysql://u:{SECRET}@127.0.0.1:1/db",                     # driver not installed
]


@pytest.mark.parametrize("url", URLS)
def test_redaction_hides_the_whole_secret(url: str) -> None:
    assert SECRET not in redact_url(url)
    assert any(SECRET in s for s in _secrets_of(url))
    # a third-party message may echo the URL, or a piece of a password a parser split
    pieces = [x for x in re.split(r"[/@:?#]", url) if SECRET in x]
    text = f"failed: {url} (" + ", ".join(pieces) + ")"
    assert SECRET not in scrub_secrets(text, ["--storage", url])


def test_dsn_keys_and_harmless_keys() -> None:
    assert redact_url(f"host=h password={SECRET} dbname=d") == "host=h password=*** dbname=d"
    assert redact_url("num_key_value_heads=8 tokens=4") == "num_key_value_heads=8 tokens=4"


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("command", ["worker", "dashboard", "search"])
def test_every_error_path_keeps_the_secret(url: str, command: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    argv = {"worker": ["worker", "--storage", url, "--study", "s"],
            "dashboard": ["dashboard", "--storage", url],
            "search": ["search", "--workload", "gptj", "--area", "400", "--searcher", "random",
                       "--budget", "3", "--storage", url, "--out", str(tmp_path / "o")],
            }[command]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code in (1, 2), err
    assert SECRET not in out + err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
