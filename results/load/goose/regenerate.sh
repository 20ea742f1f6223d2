#!/usr/bin/env bash
# Regenerates goose's own reports of one stateless and one stateful run
# (statebench load --report-file), and their screenshots.
#
# Needs a release build, chromium (apt) and npm. Goose's HTML loads echarts
# from a CDN; the screenshots are taken from a copy that loads the same
# echarts version from npm, so they render without internet. The committed
# HTML files are goose's own, unchanged.
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=results/load/goose
bin=target/release/statebench
[ -x "$bin" ] || cargo build --release
for scenario in stateless stateful; do
  "$bin" load --scenario "$scenario" --users 8 --run-time 10s \
    --report-file "$out/$scenario.html" --save "$out/$scenario.json"
done

echarts_dir=target/echarts
[ -f "$echarts_dir/node_modules/echarts/dist/echarts.min.js" ] ||
  npm install --silent --no-save --no-audit --no-fund --prefix "$echarts_dir" echarts@5.2.2
echarts="file://$PWD/$echarts_dir/node_modules/echarts/dist/echarts.min.js"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for scenario in stateless stateful; do
  sed "s#https://cdn.jsdelivr.net/npm/echarts@5.2.2/dist/echarts.min.js#$echarts#" \
    "$out/$scenario.html" > "$tmp/$scenario.html"
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --virtual-time-budget=5000 --window-size=1280,2600 \
    --screenshot="$PWD/$out/$scenario.png" "file://$tmp/$scenario.html"
done
