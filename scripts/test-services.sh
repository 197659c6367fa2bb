#!/usr/bin/env bash
# `npm run test:services`: makes sure the local PostgreSQL, Redis and NATS are up (starting any
# that is down), points the backend suites at them, then runs `npm test`. Set any
# GATEHOUSE_TEST_* variable yourself to use another server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/services.sh
export GATEHOUSE_TEST_POSTGRES_URL=${GATEHOUSE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
export GATEHOUSE_TEST_REDIS_URL=${GATEHOUSE_TEST_REDIS_URL:-redis://127.0.0.1:6379}
export GATEHOUSE_TEST_NATS_URL=${GATEHOUSE_TEST_NATS_URL:-nats://127.0.0.1:4222}
exec npm test -- "$@"
