# Shared by ./run and ./test: a virtualenv in .venv with kfd installed, and
# the Debian packages a list names. Sourced, not run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

apt_install() {  # apt_install LIST-FILE [--optional]: install the missing packages it names
  # A line is "package [command]": with a command, a package is also taken as
  # present when that command is on PATH (Node.js from NodeSource ships npm,
  # and Debian's npm package would conflict with it).
  local wanted=() missing=() line pkg cmd
  mapfile -t wanted < <(grep -v '^\s*#' "$1" | grep -v '^\s*$')
  command -v dpkg-query >/dev/null || { say "not a Debian system: install ${wanted[*]} yourself"; return 0; }
  for line in "${wanted[@]}"; do
    read -r pkg cmd <<<"$line"
    if [ -n "${cmd:-}" ] && command -v "$cmd" >/dev/null; then continue; fi
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then sudo="sudo"; else
      say "missing Debian packages: ${missing[*]} (no root and no sudo: install them, then rerun)"
      [ "${2:-}" = "--optional" ] && return 0
      return 1
    fi
  fi
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

ensure_venv() {  # ensure_venv [EXTRAS]: .venv with the locked dependencies and kfd
  # Separate statements: in one `local a=... b=$a`, $a would still be the
  # caller's (empty), so ./test took ./run's stamp and skipped the dev tools.
  local extras="${1:-}"
  local stamp="$VENV/.kfd-installed${extras:+-$extras}"
  local lock="$ROOT/requirements/lock${extras:+-$extras}.txt"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  # Reinstall only when the lock or the project metadata changed.
  if [ ! -f "$stamp" ] || [ "$lock" -nt "$stamp" ] || [ "$ROOT/requirements/lock.txt" -nt "$stamp" ] \
     || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    say "installing kfd and its locked dependencies"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -r "$lock"
    "$VENV/bin/python" -m pip install -q --no-deps -e "$ROOT${extras:+[$extras]}"
    touch "$stamp"
  fi
}

npm_install() {  # npm_install DIR: DIR/node_modules exactly as DIR/package-lock.json pins it
  local dir="$1" stamp="$1/node_modules/.kfd-installed"
  command -v npm >/dev/null || { say "npm missing: skipping $dir"; return 0; }
  if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ]; then
    say "installing the Node packages of $dir"
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
    touch "$stamp"
  fi
}
