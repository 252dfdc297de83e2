#!/bin/sh
# Vendor ECharts (the charts of the dashboards) into app/static at a pinned version, from the
# npm registry, checked against the registry's sha512 integrity. The committed files are what
# the app serves: nothing is fetched at install or run time. Run again only to change
# ECHARTS_VERSION (and ECHARTS_INTEGRITY, copied from `npm view echarts@<ver> dist.integrity`).
set -eu
ECHARTS_VERSION="${ECHARTS_VERSION:-5.6.0}"
ECHARTS_INTEGRITY="${ECHARTS_INTEGRITY:-sha512-oTbVTsXfKuEhxftHqL5xprgLoc0k7uScAwtryCgWF6hPYFLRwOUHiFmHGCBKP5NPFNkDVopOieyUqYGH8Fa3kA==}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/app/static/vendor/echarts/$ECHARTS_VERSION"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

curl -fsSL -o "$WORK/echarts.tgz" \
    "https://registry.npmjs.org/echarts/-/echarts-$ECHARTS_VERSION.tgz"
got="sha512-$(openssl dgst -sha512 -binary "$WORK/echarts.tgz" | base64 -w0)"
if [ "$got" != "$ECHARTS_INTEGRITY" ]; then
    echo "integrity mismatch for echarts $ECHARTS_VERSION: got $got" >&2
    exit 1
fi
tar -xzf "$WORK/echarts.tgz" -C "$WORK" package/dist/echarts.min.js package/LICENSE \
    package/NOTICE
mkdir -p "$DEST"
cp "$WORK/package/dist/echarts.min.js" "$WORK/package/LICENSE" "$WORK/package/NOTICE" "$DEST/"
# ECharts' own Chinese (default) and English strings ship inside echarts.min.js.
( cd "$DEST" && sha256sum echarts.min.js LICENSE NOTICE > SHA256SUMS )
echo "echarts $ECHARTS_VERSION -> $DEST"
