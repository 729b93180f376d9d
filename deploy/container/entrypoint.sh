#!/bin/sh
# testarena-entrypoint: what the image runs under tini (PID 1).
#
#   app      check the config, apply pending migrations (as the unit's
#            ExecStartPre), start nginx in front unless TESTARENA_NGINX=off,
#            then exec testarena-app serve
#   worker   exec testarena-worker
#   other    exec it as given, e.g. `testarena-app user add admin --admin
#            --password-stdin` or `testarena-app backup /testarena/backups/x.db`
#
# Each daemon replaces this shell (exec), so tini's SIGTERM reaches it
# directly: the app finishes its requests, the worker stops its queues within
# worker.abort_grace_s and exits within abort_grace_s + 2 s.
set -eu

: "${TESTARENA_CONFIG:=/etc/testarena/config.toml}"
export TESTARENA_CONFIG

case "${1:-app}" in
app)
    [ $# -gt 0 ] && shift
    # A bad key stops here, named, before anything starts.
    testarena-app check-config >/dev/null
    testarena-app migrate
    mode=${TESTARENA_NGINX:-http}
    case $mode in
    off) ;;
    http | https)
        # nginx detaches (daemon on); its master is reparented to tini,
        # which reaps it. It proxies to [server] listen, which must stay
        # 127.0.0.1:8080 (the app trusts X-Real-IP from loopback only).
        nginx -c "/etc/nginx/testarena/nginx-$mode.conf"
        ;;
    *)
        echo "testarena-entrypoint: TESTARENA_NGINX must be http, https or off, not '$mode'" >&2
        exit 2
        ;;
    esac
    exec testarena-app serve "$@"
    ;;
worker)
    shift
    exec testarena-worker "$@"
    ;;
*)
    exec "$@"
    ;;
esac
