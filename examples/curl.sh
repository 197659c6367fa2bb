#!/usr/bin/env bash
# The REST side with curl: an app logs a user in (open API), the user gets a connect ticket,
# checks its token, lists its conversations and reads history.
#
#   GATEHOUSE_URL=http://127.0.0.1:8080 GATEHOUSE_APP_KEY=gk_… bash examples/curl.sh [USER_ID]
set -euo pipefail
BASE=${GATEHOUSE_URL:-http://127.0.0.1:8080}
: "${GATEHOUSE_APP_KEY:?set GATEHOUSE_APP_KEY (npx gatehouse app-key create --name demo)}"
USER_ID=${1:-alice}
json() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }

echo "# 1. the app's backend logs $USER_ID in with its app key"
LOGIN=$(curl -sf "$BASE/openapi/v1/user/login" -H "X-App-Key: $GATEHOUSE_APP_KEY" \
  -H 'content-type: application/json' -d "{\"id\":\"$USER_ID\",\"nickname\":\"$USER_ID\",\"device\":\"im_web\"}")
TOKEN=$(echo "$LOGIN" | json token | sed 's/^Bearer //')
echo "token: ${TOKEN:0:8}…${TOKEN: -4}"

echo "# 2. is the token valid?"
curl -sf "$BASE/api/v1/public/validate-token" -H "Authorization: Bearer $TOKEN"; echo

echo "# 3. a single-use connect ticket (30 s) for ws://…/ws?ticket=…"
TICKET=$(curl -sf -X POST "$BASE/api/v1/ws-ticket" -H "Authorization: Bearer $TOKEN" | json ticket)
echo "ticket: ${TICKET:0:8}…"

echo "# 4. conversations with unread counts"
CONVERSATIONS=$(curl -sf "$BASE/api/v1/conversations" -H "Authorization: Bearer $TOKEN")
echo "$CONVERSATIONS"

CONVERSATION=$(echo "$CONVERSATIONS" | sed -n 's/.*"conversations":\[{"id":"\([^"]*\)".*/\1/p')
if [ -n "$CONVERSATION" ]; then
  echo "# 5. the latest history page of $CONVERSATION"
  curl -sf "$BASE/api/v1/conversations/$CONVERSATION/messages?limit=20" -H "Authorization: Bearer $TOKEN"; echo
fi
echo "ok"
