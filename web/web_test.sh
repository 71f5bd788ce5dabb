#!/usr/bin/env bash
# Static checks of the web UI: everything must work under
# Content-Security-Policy "default-src 'self'" with no external assets, and
# every script must parse. Then the Node unit tests of the pure helpers.
set -uo pipefail
dir=web
[[ -d $dir ]] || dir=$(dirname "$0")
fail=0
err() { echo "FAIL: $*"; fail=1; }

for f in "$dir"/*.html; do
  # inline scripts (a <script> element with content) and inline event handlers / styles
  if grep -Pzo '(?s)<script(?![^>]*\bsrc=)[^>]*>' "$f" | grep -q .; then err "$f: inline <script>"; fi
  grep -nE '<style|[[:space:]]style=|[[:space:]]on[a-z]+=|javascript:' "$f" && err "$f: inline style or handler"
  grep -nE '(src|href)="(https?:)?//' "$f" && err "$f: external asset"
  # local assets live under /ui/ (kmrd serves web/<file> at /ui/<file>, index.html at /)
  for ref in $(grep -oE '(src|href)="/ui/[a-z][a-z0-9_.-]*[.](js|css|svg)"' "$f" | sed -E 's/.*="\/ui\/([^"]+)"/\1/'); do
    [[ -f $dir/$ref ]] || err "$f references $ref which is not in web/"
  done
  n=$(grep -cE '<script defer src="/ui/[a-z]+[.]js"></script>' "$f")
  [[ $n -ge 5 ]] || err "$f: expected the app scripts, found $n"
done
for f in "$dir"/*.js; do
  [[ $f == *_test.js ]] && continue
  node --check "$f" || err "$f: syntax"
  grep -nE 'innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function|\.style\.|setAttribute\(.style' "$f" && err "$f: unsafe DOM/CSP construct"
  grep -nE "https?://" "$f" | grep -v 'http://www.w3.org/2000/svg' | grep -vE '^\s*[0-9]+:\s*//' && err "$f: external URL"
done
for f in "$dir"/*.css; do
  grep -nE 'url\((["'"'"']?)(https?:)?//|@import' "$f" && err "$f: external resource in CSS"
done

node "$dir/core_test.js" || err "core_test.js"
if [[ $fail -ne 0 ]]; then echo "web_test: FAILED"; exit 1; fi
echo "web_test: all checks passed"
