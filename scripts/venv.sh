#!/usr/bin/env bash
# Create .venv with Python >= 3.11 and install the project with its dev tools, only when
# pyproject.toml changed since the last install. On a fresh Debian machine, installs the
# python3-venv package first when running as root.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
stamp="$venv/.installed"

# The editable install maps the packages that exist when it runs: a new top-level package
# (a new service) needs a reinstall as much as a changed pyproject.toml does.
packages=$(ls -d contracts messaging ./*_service 2>/dev/null | tr '\n' ' ')
if [[ -f "$stamp" && "$stamp" -nt pyproject.toml && -x "$venv/bin/python" &&
    "$(cat "$stamp")" == "$packages" ]]; then
    exit 0
fi

python=""
for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        python=$(command -v "$candidate")
        break
    fi
done
if [[ -z "$python" ]]; then
    echo "error: Python 3.11 or newer is needed (apt-get install python3)" >&2
    exit 1
fi

if [[ ! -x "$venv/bin/python" ]]; then
    if ! "$python" -m venv "$venv" 2>/dev/null; then
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
            echo "installing python3-venv from the distribution"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
            rm -rf "$venv"
            "$python" -m venv "$venv"
        else
            echo "error: '$python -m venv' failed; install the python3-venv package" >&2
            exit 1
        fi
    fi
fi
echo "installing the project into $venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e '.[dev]'
printf "%s" "$packages" >"$stamp"
