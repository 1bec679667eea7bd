#!/usr/bin/env bash
# The format check (STYLE.md, after curl's): every C file under src/, states/,
# webhooks/, mocks/, tests/, bench/ and fuzz/ that git tracks or would track.
#
#   - no line longer than 100 columns (characters; a tab counts as one)
#   - no sprintf, vsprintf, strcpy, strcat, strtok, gets (snprintf is fine)
#   - no assignment in an if/while condition: `if ((x = f()))`
#
# Prints each violation as file:line: reason and exits 1, or prints
# "style: N files ok". scripts/test.sh runs it as the suite named "style".
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

mapfile -t files < <(
  { git ls-files -- src states webhooks mocks tests bench fuzz
    git ls-files --others --exclude-standard -- src states webhooks mocks tests bench fuzz
  } | grep -E '\.[ch]$' | sort -u
)
# A tracked file deleted in the work tree is not ours to check.
present=()
for f in "${files[@]}"; do [ -f "$f" ] && present+=("$f"); done

if [ ${#present[@]} -eq 0 ]; then
  echo "style: 0 files ok"
  exit 0
fi

# One awk pass over every file. Comments and string literals are not stripped:
# a banned name in a comment should be reworded anyway, and the patterns below
# need a call's "(" right after the name.
LC_ALL=C awk '
  length($0) > 100 {
    # Count characters, not bytes: drop UTF-8 continuation bytes first.
    t = $0; n = length(t) - gsub(/[\200-\277]/, "", t)
    if (n > 100) { printf "%s:%d: line is %d columns (max 100)\n", FILENAME, FNR, n; bad++ }
  }
  {
    rest = $0
    while (match(rest, /(^|[^A-Za-z0-9_])(sprintf|vsprintf|strcpy|strcat|strtok|gets)[ \t]*\(/)) {
      s = substr(rest, RSTART, RLENGTH); rest = substr(rest, RSTART + RLENGTH)
      sub(/^[^A-Za-z_]/, "", s); sub(/[ \t]*\($/, "", s)
      printf "%s:%d: banned function %s()\n", FILENAME, FNR, s; bad++
    }
  }
  /(^|[^A-Za-z0-9_])(if|while)[ \t]*\(\([ \t]*[A-Za-z_][A-Za-z0-9_.>\[\]-]*[ \t]*=[^=]/ {
    printf "%s:%d: assignment in a condition\n", FILENAME, FNR; bad++
  }
  END { exit bad > 0 }
' "${present[@]}"
rc=$?
if [ "$rc" -ne 0 ]; then
  exit 1
fi
echo "style: ${#present[@]} files ok"
