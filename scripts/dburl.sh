#!/usr/bin/env bash
# dburl.sh URL DBNAME: the same connection with another database name, as a
# libpq keyword/value string (works for URIs and keyword strings alike).
set -euo pipefail
url=$1 db=$2
if [[ $url == postgres://* || $url == postgresql://* ]]; then
  rest=${url#*://}
  hostpart=${rest%%/*}
  query=""
  [[ $rest == *\?* ]] && query="?${rest#*\?}"
  echo "${url%%://*}://$hostpart/$db$query"
else
  echo "$url dbname=$db"
fi
