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
  for ref in $(grep -oE '(src|href)="/ui/[a-z][a-z0-9_.-]*[.](js|mjs|css|svg)"' "$f" | sed -E 's/.*="\/ui\/([^"]+)"/\1/'); do
    [[ -f $dir/$ref ]] || err "$f references $ref which is not in web/"
  done
  n=$(grep -cE '<script defer src="/ui/[a-z]+[.]js"></script>' "$f")
  [[ $n -ge 5 ]] || err "$f: expected the app scripts, found $n"
  # the verdict rule (a module) must come before the classic scripts that use it
  first=$(grep -oE '<script[^>]*src="/ui/[a-z.]+"' "$f" | head -1)
  [[ $first == '<script type="module" src="/ui/rule.mjs"' ]] || err "$f: rule.mjs must be the first script, found $first"
done

# The vocabulary and the rule are kmrd's generated module (//web:verdicts_js,
# the text kmrd serves at /ui/verdicts.js); the UI keeps no copy of its own.
verdicts=${KMR_VERDICTS_JS:-$dir/verdicts.js}
[[ -f $verdicts ]] || err "no generated verdicts.js at $verdicts (bazel test //web:web_test, or set KMR_VERDICTS_JS)"
grep -q "^import \* as verdicts from './verdicts.js';" "$dir/rule.mjs" || err "rule.mjs does not import ./verdicts.js"
for f in "$dir"/*.js "$dir"/*.mjs; do
  [[ $f == *_test.js || $f == "$verdicts" || $(basename "$f") == verdicts.js ]] && continue
  grep -nE "'identical',[[:space:]]*'content-identical'[[:space:]]*[],]|'match',[[:space:]]*'(mismatch|absent)'[[:space:]]*[],]|function[[:space:]]+isReproducible\(files" "$f" &&
    err "$f: a copy of the verdict vocabulary or rule (import it from verdicts.js)"
done

for f in "$dir"/*.js "$dir"/*.mjs; do
  [[ $f == *_test.js ]] && continue
  # (verdicts.js is an ES module with a .js name: it is parsed when core_test loads it)
  [[ $(basename "$f") == verdicts.js ]] || node --check "$f" || err "$f: syntax"
  grep -nE 'innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function|\.style\.|setAttribute\(.style' "$f" && err "$f: unsafe DOM/CSP construct"
  grep -nE "https?://" "$f" | grep -v 'http://www.w3.org/2000/svg' | grep -vE '^\s*[0-9]+:\s*//' && err "$f: external URL"
done
for f in "$dir"/*.css; do
  grep -nE 'url\((["'"'"']?)(https?:)?//|@import' "$f" && err "$f: external resource in CSS"
done

# core_test.js runs with the generated module loaded as the page loads it
# (KMR.verdicts), so the UI's helpers are tested against the real rule.
node --input-type=module -e "
import fs from 'node:fs';
import { createRequire } from 'node:module';
const [verdicts, test] = process.argv.slice(1);
const text = fs.readFileSync(verdicts).toString('base64');
globalThis.KMR = { verdicts: await import('data:text/javascript;base64,' + text) };
createRequire(test)(test);
" "$verdicts" "$(cd "$(dirname "$dir/core_test.js")" && pwd)/core_test.js" || err "core_test.js"
if [[ $fail -ne 0 ]]; then echo "web_test: FAILED"; exit 1; fi
echo "web_test: all checks passed"
