#!/usr/bin/env bash
# Ensures a python3 that can import jsonschema, for make test-examples
# (examples/python/backend.py validates frames against the bus schema).
# Idempotent: nothing to do when `python3` (a pyenv one included) or Debian's
# /usr/bin/python3 already imports it; otherwise installs Debian's python3 and
# python3-jsonschema (apt-get update only when the install needs it).
# Prints the interpreter to use; the Makefile picks the same one (OCVR_PYTHON).
set -euo pipefail

for p in python3 /usr/bin/python3; do
	if command -v "$p" >/dev/null && "$p" -c 'import jsonschema' 2>/dev/null; then
		echo "python: $("$p" --version 2>&1) with jsonschema ($(command -v "$p"))"
		exit 0
	fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
pkgs=(python3 python3-jsonschema)
$SUDO apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1 ||
	{ $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null; }
/usr/bin/python3 -c 'import jsonschema' || { echo "install-python: /usr/bin/python3 still cannot import jsonschema" >&2; exit 1; }
echo "python: $(/usr/bin/python3 --version 2>&1) with jsonschema (/usr/bin/python3, Debian)"
