#!/usr/bin/env bash
# Makes sure the local services the scale-out suites use are up, starting any that is down
# with the machine's own start commands. Prints one line per service.
set -u

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  local name=$1 port=$2
  for _ in $(seq 1 50); do
    if up "$port"; then echo "$name: up on 127.0.0.1:$port"; return 0; fi
    sleep 0.2
  done
  echo "$name: NOT reachable on 127.0.0.1:$port" >&2
  return 1
}

if ! up 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
wait_for postgresql 5432 || true

if ! up 6379; then
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
wait_for redis 6379 || true

if ! up 4222; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log || true
fi
wait_for nats 4222 || true
