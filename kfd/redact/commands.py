"""Credentials given to commands on their command line.

A command the model runs is stored (its call, its approval, its echo in the
output), so a password passed as an argument is stored with it unless it is
taken out here. Three forms, the knowledge of programs kept as data:

- a long option whose name says it takes a secret, its value after a space
  (``--token abc``, ``--password 'x y'``, ``-storepass x``); with ``=`` it is
  an assignment (`kfd.redact.assignments`), like ``PGPASSWORD=x psql``;
- a program's own short option for a password (`PROGRAM_OPTIONS`):
  ``mysql -pSECRET``, ``sshpass -p SECRET``, ``redis-cli -a SECRET``, ``curl -u
  user:SECRET``, ``smbclient -U user%SECRET``, ``openssl -passin pass:SECRET``;
  the option counts only after its program (``docker run -p 80:80`` publishes
  a port; ``docker login -p`` takes a password);
- a setting command naming a secret key, then its value: ``git config
  user.password x``, ``npm config set //registry/:_authToken x``, ``aws
  configure set aws_secret_access_key x``.

Passwords in URLs and ``Authorization`` headers are `kfd.redact.shapes`'.
"""

from __future__ import annotations

import re

from kfd.redact.assignments import credential_like, secret_name
from kfd.redact.shapes import Shape

ATTACHED = "attached"
"""``-pSECRET`` only: with a space the next word is something else (mysql's database)."""
BOTH = "both"
"""``-pSECRET`` or ``-p SECRET``."""
USER_COLON = "user:secret"
"""``-u user:SECRET``: the part after the first colon."""
USER_PERCENT = "user%secret"
"""``-U user%SECRET`` (Samba's tools)."""
PASS_PREFIX = "pass:secret"
"""``-passin pass:SECRET`` (OpenSSL's pass phrase arguments)."""
NAME_EQUALS = "name=secret"
"""``--from-literal=NAME=SECRET``: every value, whatever the name."""

_MYSQL = (
    "mysql",
    "mysqldump",
    "mysqladmin",
    "mysqlimport",
    "mysqlshow",
    "mysqlcheck",
    "mysqlpump",
    "mysqlslap",
    "mysqlsh",
    "mariadb",
    "mariadb-dump",
    "mariadb-admin",
    "mariadb-import",
    "mariadb-check",
    "mycli",
)
_LDAP = ("ldapsearch", "ldapadd", "ldapmodify", "ldapdelete", "ldapwhoami", "ldapcompare")
_MONGO = ("mongo", "mongosh", "mongodump", "mongorestore", "mongoexport", "mongoimport")
_REGISTRIES = ("docker", "podman", "nerdctl", "buildah", "skopeo", "oras", "crane")

PROGRAM_OPTIONS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    # (the programs, with the words that must follow them; the options; the form)
    (_MYSQL, "-p", ATTACHED),
    (("sshpass",), "-p", BOTH),
    (("redis-cli", "keydb-cli", "valkey-cli"), "-a", BOTH),
    ((*(f"{p} login" for p in _REGISTRIES), "helm registry login"), "-p", BOTH),
    ((*_LDAP, "ldapmodrdn", "ldappasswd"), "-w", BOTH),
    (_MONGO, "-p", BOTH),
    (("sqlcmd", "bcp", "osql", "isql"), "-P", BOTH),
    (("zip", "unzip", "zipcloak"), "-P", BOTH),
    (("7z", "7za", "7zr"), "-p", ATTACHED),
    (("ssh-keygen",), "-[NP]", BOTH),
    (("curl",), "-u|--user|-U|--proxy-user", USER_COLON),
    (("http", "https", "httpie", "xh", "xhs"), "-a|--auth", USER_COLON),
    (("smbclient", "rpcclient", "smbmap", "smbcacls"), "-U|--user", USER_PERCENT),
    (("openssl",), "-pass|-passin|-passout|-password|-k", PASS_PREFIX),
    (("kubectl create secret", "oc create secret"), "--from-literal", NAME_EQUALS),
    (("gh secret set", "gh variable set"), "-b|--body", BOTH),
)
"""Each program's own options that take a password or a token."""

_WORD = r"(?:'[^'\n]*'|\"[^\"\n]*\"|[^\s'\"`|;&<>()]+)"
"""One shell word: quoted, or up to a space or an operator."""
_COMMAND = r"(?:{programs})(?![\w.-])[^\n|;&]*?(?<=\s)(?:{options})"
"""The program, then within the same simple command (no ``|``, ``;``, ``&``), its
option. Its start is checked by `_given` (an expression led by a look-behind is not
searched for by its first letters, and would cost every text it is run on)."""

_VALUE = {
    ATTACHED: rf"(?P<secret>{_WORD})",
    BOTH: rf"(?:=|[ \t]+)?(?P<secret>{_WORD})",
    USER_COLON: r"(?:=|[ \t]+)?['\"]?[^\s:'\"]*:(?P<secret>[^\s'\"`]+)",
    USER_PERCENT: r"(?:=|[ \t]+)?['\"]?[^\s%'\"]+%(?P<secret>[^\s'\"`]+)",
    PASS_PREFIX: r"[ \t]+['\"]?pass:(?P<secret>[^\s'\"`]+)",
    NAME_EQUALS: r"[= \t]+['\"]?[\w.-]+=(?P<secret>[^\s'\"`]+)",
}


def _given(secret: str, match: re.Match[str]) -> bool:
    """A program's password option's value is a secret unless it refers to one."""
    value = secret.strip("'\"`.,:;")
    return (
        _starts_a_word(match)
        and len(value) >= 3
        and not value.startswith(("$", "-", "<", "{"))
        and not value.isupper()  # SECRET, PASSWORD: a metavariable in a usage line
    )


def _starts_a_word(match: re.Match[str]) -> bool:
    start = match.start()
    return start == 0 or not (
        match.string[start - 1].isalnum() or match.string[start - 1] in "_./-"
    )


def _program_shapes() -> tuple[Shape, ...]:
    shapes = []
    for programs, options, form in PROGRAM_OPTIONS:
        alternatives = "|".join(re.escape(p).replace(r"\ ", r"[ \t]+") for p in programs)
        expression = _COMMAND.format(programs=alternatives, options=options) + _VALUE[form]
        # A program's name and a space: "http" alone is in every URL, "http -a" is not.
        triggers = tuple(sorted({f"{p.split()[0]} " for p in programs}))
        shapes.append(Shape("password", re.compile(expression), check=_given, triggers=triggers))
    return tuple(shapes)


def _option_named(secret: str, match: re.Match[str]) -> bool:
    """``--token abc``: the option's name is a secret's, and what follows is not
    another option, a reference, a path, a metavariable (``TOKEN``, ``<token>``)."""
    if not _starts_a_word(match) or secret_name(match.group("option")) != "strong":
        return False
    value = secret.strip("'\"")
    if not value or value.startswith(("-", "$", "/", "~", "./", "<", "[", "{")):
        return False
    if value.isupper() or ("://" in value and "@" not in value):
        return False
    return len(value) >= 6 and credential_like(value)


_SETTING_WORDS = ("config", "configure")


def _setting(secret: str, match: re.Match[str]) -> bool:
    value = secret.strip("'\"")
    return (
        secret_name(match.group("key")) is not None
        and len(value) >= 6
        and not value.startswith(("$", "-", "/", "~"))
        and credential_like(value)
    )


SHAPES: tuple[Shape, ...] = (
    *_program_shapes(),
    Shape(
        "password",
        re.compile(rf"--?(?P<option>[A-Za-z][\w-]*)[ \t]+(?P<secret>{_WORD})"),
        check=_option_named,
        triggers=("pass", "pwd", "secret", "token", "key", "credential", "auth"),
        fold=True,
    ),
    Shape(
        "password",
        re.compile(
            r"config(?<![\w.-]config)(?:ure)?[ \t]+(?:set[ \t]+)?(?:--?[\w-]+[ \t]+)*"
            rf"(?P<key>[\w./:@-]+)[ \t]+(?P<secret>{_WORD})"
        ),
        check=_setting,
        triggers=_SETTING_WORDS,
    ),
)
"""Program options first (they know their programs), then named options, then settings."""
