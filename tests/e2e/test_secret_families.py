"""What an attacker found in kfd.db after the model read a project's config files
and ran commands with passwords on their command lines: none of it is stored now.

A real daemon and its SQLite file: the scripted model has ``bash`` print a kube
config, a WordPress config, a Rails secrets file, a Vault token and a Hugging
Face token (reading them is allowed by default), then run commands holding
passwords. Every table of the database, and the file's bytes, are searched for
each secret afterwards.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Callable
from pathlib import Path

from kfd import protocol as p
from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall
from kfd.testing.daemon import KfdDaemon
from kfd.testing.events import collect_until, turn_completed

PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEpAIBAAKCAQEAcanaryKeyBodyQ2FuYXJ5S2V5Qm9keUNhbmFyeUtleUJvZHk=\n"
    "-----END RSA PRIVATE KEY-----\n"
)
KEY_DATA = base64.b64encode(PEM.encode()).decode()
DB_PASSWORD = "Wp9CanaryDbPw77"
SECRET_KEY_BASE = "5ecre7ba5eCanary0123456789abcdef0123456789abcdef"
VAULT_TOKEN = "hvs.CAESICanaryVau1tT0kenXyZ1234567890ab"
HF_TOKEN = "hf_CanaryHuggingFaceTokenAbCdEfGh12"
MYSQL_PASSWORD = "My5qlCanaryPw"
CURL_PASSWORD = "Cu7lCanaryPw"
SSHPASS_PASSWORD = "Ssh9CanaryPw"
SECRETS = [
    KEY_DATA[:40],
    KEY_DATA[40:80],
    DB_PASSWORD,
    SECRET_KEY_BASE,
    VAULT_TOKEN,
    HF_TOKEN,
    MYSQL_PASSWORD,
    CURL_PASSWORD,
    SSHPASS_PASSWORD,
]

FILES = {
    "deploy/kubeconfig.yaml": (
        "apiVersion: v1\nusers:\n- name: admin\n  user:\n"
        f"    client-certificate-data: {KEY_DATA}\n    client-key-data: {KEY_DATA}\n"
    ),
    "wp-config.php": f"<?php\ndefine('DB_USER', 'wp');\ndefine('DB_PASSWORD','{DB_PASSWORD}');\n",
    "config/secrets.yml": f"production:\n  secret_key_base: {SECRET_KEY_BASE}\n",
    "vault-token.txt": f"{VAULT_TOKEN}\n",
    "ml/hub.txt": f"login with {HF_TOKEN}\n",
}
COMMANDS = (
    f"echo mysql -u root -p{MYSQL_PASSWORD} app",
    f"echo curl -u admin:{CURL_PASSWORD} https://ci.example.com/api",
    f"echo sshpass -p {SSHPASS_PASSWORD} ssh deploy@web1 uptime",
)


def bash(command: str) -> Reply:
    return Reply(tool_calls=[ScriptedToolCall("bash", {"command": command})])


async def test_config_files_read_and_commands_run_leave_no_secret_in_the_database(
    make_daemon: Callable[..., KfdDaemon], model_server: ScriptedModelServer, workspace: Path
) -> None:
    for name, text in FILES.items():
        (workspace / name).parent.mkdir(parents=True, exist_ok=True)
        (workspace / name).write_text(text)
    daemon = make_daemon()
    model_server.add(
        bash(f"cat {' '.join(FILES)}"),
        *(bash(command) for command in COMMANDS),
        Reply(text="Read the configs and checked the clients."),
    )
    async with await daemon.client() as client:
        info = await client.create_session(workspace, mode="auto")
        async with await client.attach(info.id) as view:
            await client.send(info.id, "look at the deployment config")
            events = await collect_until(view, turn_completed, timeout=60)

    done = [e for e in events if isinstance(e, p.ToolCompleted)]
    assert [c.status for c in done] == ["ok"] * (1 + len(COMMANDS)), [c.output for c in done]
    shown = done[0].output
    assert "client-key-data: [redacted private-key]" in shown, shown
    assert "secret_key_base: [redacted" in shown and "[redacted vault-token]" in shown, shown
    # The live model read the real text: it needs it to work.
    assert DB_PASSWORD in str(model_server.requests[1].body["messages"][-1]["content"])
    finished = events[-1]
    assert isinstance(finished, p.TurnCompleted) and finished.stop_reason == "end_turn"

    daemon.stop()
    with sqlite3.connect(daemon.database) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f"SELECT * FROM {table}"):
                stored = "\n".join(str(value) for value in row)
                for secret in SECRETS:
                    assert secret not in stored, (secret, table)
    for path in [daemon.database, *daemon.database.parent.glob("kfd.db-*")]:
        data = path.read_bytes()
        assert all(secret.encode() not in data for secret in SECRETS), path.name
