#!/bin/sh
# CI stage "gimp": the GIMP 3 end-to-end tests.
# Builds (first run, about 2 minutes) or reuses the cached Debian trixie root with GIMP 3
# (SDEDIT_GIMP_ROOT, default /var/cache/sdedit-ci/trixie-gimp), then runs tests/e2e/gimp with the project's
# pytest. If the root cannot be built here, the reason is printed and the tests skip with it.
set -u
cd "$(dirname "$0")/.."
PYTHON="${SDEDIT_PYTHON:-}"
if [ -z "$PYTHON" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

start=$(date +%s)
echo "== gimp: GIMP 3 root"
if ROOT=$(sh .ci/gimp_root.sh 2>/tmp/sdedit-gimp-root.err); then
    cat /tmp/sdedit-gimp-root.err
    export SDEDIT_GIMP_ROOT="$ROOT"
    unset SDEDIT_GIMP_UNAVAILABLE
else
    cat /tmp/sdedit-gimp-root.err
    reason=$(grep -v '^ *$' /tmp/sdedit-gimp-root.err | tail -n 1)
    export SDEDIT_GIMP_UNAVAILABLE="${reason:-the Debian trixie root with GIMP 3 could not be built}"
    echo "== gimp: SKIPPING the GIMP end-to-end tests: $SDEDIT_GIMP_UNAVAILABLE"
fi
echo "== gimp: root step took $(( $(date +%s) - start )) s"

"$PYTHON" -m pytest -m e2e tests/e2e/gimp -rs -q -p no:cacheprovider
rc=$?
echo "== gimp: stage took $(( $(date +%s) - start )) s (exit $rc)"
exit $rc
