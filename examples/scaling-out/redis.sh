#!/bin/sh
# The Redis the nodes share. No persistence: the backplane keeps only recent
# history (its ttl), and a restart starts new epochs, which clients are told.
# Listen on a private address only. PORT and DIR may be set in the environment.
exec redis-server \
  --bind 127.0.0.1 --port "${PORT:-6379}" --dir "${DIR:-/var/lib/redis}" \
  --save '' --appendonly no \
  --maxmemory 256mb --maxmemory-policy noeviction
