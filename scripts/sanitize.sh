#!/usr/bin/env bash
# Run the whole test suite against an ASan/UBSan build of the Cython extension.
#
# Usage: scripts/sanitize.sh [pytest arguments]     (from the repository, in its virtualenv)
#
# The extension is built with -fsanitize=address,undefined in a scratch copy of
# the working tree (WSFAST_SANITIZE_DIR, else a new directory under /tmp), so the
# normal build of the checkout is left alone. The tests then run from that copy
# (PYTHONPATH puts it before the editable install) with:
#   LD_PRELOAD     the compiler's libasan and libubsan: CPython itself is not
#                  instrumented, so the runtime must be loaded before it;
#   ASAN_OPTIONS   detect_leaks=0, as CPython frees little at exit;
#   UBSAN_OPTIONS  halt_on_error=1:print_stacktrace=1, so undefined behaviour
#                  fails the test that triggers it;
#   both           log_path: reports go to files in the scratch directory,
#                  since pytest captures the stderr of the test that dies;
#   PYTHONMALLOC   malloc, so Python objects (bytes, bytearrays) come from the
#                  instrumented allocator and an overflow of one is caught.
# Subprocesses started by the tests (servers, fuzz runs) inherit all of it.
# The Chromium tests (tests/test_*chromium.py) are left out: Chromium does
# not start with libasan preloaded (its launcher script fails), and the wsfast
# code they drive runs in the other tests too.
# A sanitizer report ends the process that hit it. The script prints every
# report at the end and exits 1 if there was one, else with pytest's status.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
scratch=${WSFAST_SANITIZE_DIR:-$(mktemp -d /tmp/wsfast-sanitize.XXXXXX)}
compiler=${CC:-gcc}
flags="-fsanitize=address,undefined -fno-omit-frame-pointer -g"

echo "== copying the working tree to $scratch"
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$scratch"
if [ -d tests/peers/node_modules ]; then
  ln -sfn "$repo/tests/peers/node_modules" "$scratch/tests/peers/node_modules"
fi

echo "== building the extension with $flags"
cd "$scratch"
CC=$compiler CFLAGS=$flags LDFLAGS=$flags WSFAST_BUILD_EXTENSION=yes \
  python setup.py -q build_ext --inplace --force >build.log 2>&1 || { cat build.log; exit 1; }
for library in $(find wsfast -name '*.so'); do
  readelf -d "$library" | grep -q 'libasan' || { echo "$library is not linked with ASan" >&2; exit 1; }
done

export LD_PRELOAD="$($compiler -print-file-name=libasan.so):$($compiler -print-file-name=libubsan.so)"
reports="$scratch/sanitizer-reports"
rm -rf "$reports" && mkdir "$reports"
export ASAN_OPTIONS="detect_leaks=0:log_path=$reports/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$reports/ubsan"
export PYTHONMALLOC=malloc
export PYTHONPATH="$scratch${PYTHONPATH:+:$PYTHONPATH}"
python -c 'import sys, wsfast; sys.exit(wsfast.IMPLEMENTATION != "cython" or not wsfast.__file__.startswith(sys.argv[1]))' \
  "$scratch" || { echo "the sanitized extension is not the one imported" >&2; exit 1; }

echo "== the test suite, against the sanitized extension"
status=0
python -m pytest -p no:cacheprovider --ignore=tests/test_page_chromium.py --ignore=tests/test_asgi_chromium.py "$@" || status=$?
if [ -n "$(ls -A "$reports")" ]; then
  for report in "$reports"/*; do
    echo "== sanitizer report $report"
    cat "$report"
  done
  exit 1
fi
echo "== no sanitizer report"
exit $status
