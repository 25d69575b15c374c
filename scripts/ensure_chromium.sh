#!/bin/sh
# Make sure a Chromium for the browser test (tests/test_app_browser.py) is installed.
# Playwright's own browser download is not used: Debian's chromium package is.
# Does nothing when $CHROMIUM (default /usr/bin/chromium) is already executable.
set -eu

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    exit 0
fi

echo "ensure_chromium: $CHROMIUM is missing; installing Debian's chromium package with apt-get" >&2
if [ "$(id -u)" -eq 0 ]; then
    AS_ROOT=""
elif command -v sudo >/dev/null 2>&1; then
    AS_ROOT="sudo"
else
    echo "ensure_chromium: not root and no sudo: install chromium by hand (apt-get install chromium)" >&2
    echo "ensure_chromium: or point CHROMIUM at an existing Chromium executable" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: no apt-get on this machine: install Chromium by hand and set CHROMIUM=/path/to/it" >&2
    exit 1
fi

if ! $AS_ROOT env DEBIAN_FRONTEND=noninteractive apt-get update \
   || ! $AS_ROOT env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; then
    echo "ensure_chromium: apt-get could not install chromium (see above)" >&2
    exit 1
fi
if [ ! -x "$CHROMIUM" ]; then
    echo "ensure_chromium: chromium was installed but $CHROMIUM is still not executable; set CHROMIUM" >&2
    exit 1
fi
echo "ensure_chromium: installed $("$CHROMIUM" --version 2>/dev/null)" >&2
