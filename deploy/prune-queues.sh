#!/usr/bin/env bash
# Deletes queues that ended more than N days ago, through the REST API
# (DELETE /api/v1/queues/{id}: the rows and /testarena/queues/<id>/).
# Installed as /usr/local/bin/testarena-prune by scripts/install.sh.
#
#   TESTARENA_URL=https://testarena.example.org TESTARENA_TOKEN=... \
#       testarena-prune --days 90 [--dry-run]
#
# The token must be an admin's to delete everyone's queues (a user's token
# deletes only that user's). Waiting and running queues are never touched.
# Needs curl and jq. Exit code: 0 done, 1 a request failed, 2 usage.
set -euo pipefail

days=""
dry_run=false
while [ $# -gt 0 ]; do
    case $1 in
        --days) days=${2:-}; shift 2 ;;
        --days=*) days=${1#--days=}; shift ;;
        --dry-run) dry_run=true; shift ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ $days =~ ^[0-9]+$ ]] || { echo "error: --days N is required (a whole number)" >&2; exit 2; }
url=${TESTARENA_URL:?set TESTARENA_URL, e.g. https://testarena.example.org}
: "${TESTARENA_TOKEN:?set TESTARENA_TOKEN to an admin API token}"
url=${url%/}
for tool in curl jq; do
    command -v "$tool" >/dev/null || { echo "error: $tool is not installed" >&2; exit 2; }
done

# The token goes to curl in a header file, never on a command line.
headers=$(mktemp)
trap 'rm -f "$headers"' EXIT
printf 'Authorization: Bearer %s\n' "$TESTARENA_TOKEN" >"$headers"
api() { curl -fsS --proto =https,http -H "@$headers" "$@"; }

cutoff=$(date -u -d "$days days ago" +%Y-%m-%dT%H:%M:%SZ)
final='["passed","failed","error","aborted"]'
ids=()
next=""
# Newest first, 200 a page; the cursor is stable while queues come and go.
while :; do
    page=$(api "$url/api/v1/queues?limit=200${next:+&before=$next}")
    while IFS= read -r id; do
        [ -n "$id" ] && ids+=("$id")
    done < <(jq -r --arg cutoff "$cutoff" --argjson final "$final" \
        '.items[] | select((.status as $s | $final | index($s)) and .finished_at != null
            and (.finished_at | sub("\\.[0-9]+"; "")) < $cutoff) | .id' <<<"$page")
    next=$(jq -r '.next // empty' <<<"$page")
    [ -n "$next" ] || break
done

echo "${#ids[@]} queue(s) ended before $cutoff"
failed=0
for id in "${ids[@]}"; do
    if $dry_run; then
        echo "would delete $id"
    elif api -X DELETE -o /dev/null "$url/api/v1/queues/$id"; then
        echo "deleted $id"
    else
        echo "error: cannot delete $id" >&2
        failed=1
    fi
done
exit $failed
