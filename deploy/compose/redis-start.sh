#!/bin/sh
# Entry point of deploy/compose.yaml's Redis (redis image): the ACL rules of
# redis/users.acl, each user given its password from the environment
# (<USER>_PASSWORD, stored as its SHA-256, in a file only Redis reads), then
# Redis with that ACL file and AOF persistence. No password is on a command
# line; a user whose password is unset stops the start.
set -eu

umask 077
acl=/tmp/users.acl
: >"$acl"
while read -r keyword name state rules; do
  [ -n "$keyword" ] || continue
  if [ "$state" = on ]; then
    variable="$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]')_PASSWORD"
    password="$(printenv "$variable" || true)"
    if [ -z "$password" ]; then
      echo "redis: $variable is not set" >&2
      exit 1
    fi
    hash="$(printf '%s' "$password" | sha256sum | cut -d' ' -f1)"
    printf '%s %s on #%s %s\n' "$keyword" "$name" "$hash" "$rules" >>"$acl"
  else
    printf '%s %s %s %s\n' "$keyword" "$name" "$state" "$rules" >>"$acl"
  fi
done </opt/ticketing/users.acl
printf 'aclfile %s\nappendonly yes\ndir /data\n' "$acl" >/tmp/redis.conf
exec redis-server /tmp/redis.conf
