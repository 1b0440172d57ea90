"""What redaction costs per stored text: µs per KB of `kfd.redact.redact`.

Every event, message and tool output passes through `redact` before it is
stored, so its cost per KB is the figure that matters. Texts of the kinds a
session stores: kfd's own Python source (code naming tokens and keys), its
README (prose), this repository's ``git log -p`` (diffs), a config file full
of secrets (every shape firing), and a model's answer cut into stream deltas.

    .venv/bin/python bench/redaction.py [CORPUS_ROOT]

CORPUS_ROOT (default: this checkout) is where the texts are read from, so two
versions of kfd can be measured on the same texts.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from kfd.redact import StreamRedactor, redact, warm_up

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)

SECRETS = """\
[default]
aws_access_key_id = AKIAIOSFODNN7EXAMPLE
aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
define('DB_PASSWORD', 'Xk29dLq8PzWvQ');
    client-key-data: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlFcEFJQkFBS0NBUUVB
export VAULT_TOKEN=hvs.CAESIJlU5nXkqZ8yVb3kPz0qWmRtYx7LcN2aBdEfGhIjKlMnOp
mysql -u root -pS3cr3tPassw0rd app < dump.sql
curl -u admin:Adm1nPa55 -H 'Authorization: Bearer abcd1234efgh' https://example.com
HF_TOKEN=hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567
"""


def corpora() -> dict[str, str]:
    source = "".join(p.read_text() for p in sorted((ROOT / "kfd").rglob("*.py")))[:400_000]
    log = subprocess.run(
        ["git", "log", "-p", "-n", "60"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout[:400_000]
    return {
        "python source": source,
        "README (prose)": (ROOT / "README.md").read_text(),
        "git log -p": log,
        "config with secrets": SECRETS * 50,
    }


def per_kb(run: Callable[[], object], size: int, rounds: int = 5) -> float:
    """The least CPU time per KB of ``run`` over ``rounds`` (CPU time, and the least:
    what other processes on the machine do shows least in it)."""
    times = []
    for _ in range(rounds):
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return min(times) * 1e6 / (size / 1024)


def main() -> None:
    warm_up()
    print("redaction cost, CPU µs per KB (least of 5), redact() uncached")
    texts = corpora()
    for name, text in texts.items():
        figure = per_kb(lambda text=text: redact(text), len(text))
        print(f"  {name:<22} {len(text) / 1024:8.0f} KB  {figure:8.1f} µs/KB")
    answer = texts["README (prose)"]
    deltas = [answer[i : i + 40] for i in range(0, len(answer), 40)]

    def stream() -> None:
        redactor = StreamRedactor()
        for delta in deltas:
            redactor.feed(delta)
        redactor.finish()

    figure = per_kb(stream, len(answer))
    print(f"  {'README as 40-char deltas':<22} {len(answer) / 1024:8.0f} KB  {figure:8.1f} µs/KB")


if __name__ == "__main__":
    main()
