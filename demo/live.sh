#!/usr/bin/env bash
# The live tour: a real Postfix + Dovecot on 127.0.0.1, accounts applied with
# verification on, verify, debug, and a broken account blocked by apply.
# Needs root (make system-deps). Run through `make demo-live`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
MAILFORM=.venv/bin/mailform
LIVE=demo/.state/live
rm -rf "$LIVE" && mkdir -p "$LIVE/manifests" && chmod 755 demo/.state "$LIVE"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "starting the local mail stack (Postfix + Dovecot on 127.0.0.1)"
"$PY" -m devtools.mailstack up "$LIVE/stack" > "$LIVE/stack.json" 2> "$LIVE/stack.log" &
STACK_PID=$!
trap 'kill $STACK_PID 2>/dev/null; wait $STACK_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do
  if [ -s "$LIVE/stack.json" ] && "$PY" -c "import json,sys; json.load(open(sys.argv[1]))" "$LIVE/stack.json" 2>/dev/null; then break; fi
  if ! kill -0 $STACK_PID 2>/dev/null; then cat "$LIVE/stack.log"; exit 1; fi
  sleep 0.2
done
eval "$("$PY" - "$LIVE" <<'PYEOF'
import json, sys
live = sys.argv[1]
info = json.load(open(f"{live}/stack.json"))
ports, users = info["ports"], info["users"]
domain = info["domain"]
with open(f"{live}/vars.yaml", "w") as fh:
    fh.write(f"domain: {domain}\n")
    for key in ("submission", "smtps", "imaps", "pop3s"):
        fh.write(f"{key}: {ports[key]}\n")
text = open("demo/live/broken.yaml.in").read()
open(f"{live}/broken.yaml", "w").write(
    text.replace("DOMAIN", domain).replace("SMTPS_PORT", str(ports["smtps"])))
print(f"export MAILFORM_CA_FILE={info['ca_file']}")
print(f"export ALICE_PASSWORD='{users['alice@' + domain]}' BOB_PASSWORD='{users['bob@' + domain]}'")
print(f"export CAROL_PASSWORD='{users['alice@' + domain]}'")
print(f"export DOMAIN={domain}")
PYEOF
)"
cp demo/live/accounts.yaml "$LIVE/manifests/"
export MAILFORM_REGISTRY="sqlite:///$LIVE/registry.db" MAILFORM_ACTOR=live-demo
VARS=(--var-file "$LIVE/vars.yaml" --environment live)
"$PY" -m json.tool "$LIVE/stack.json" | head -30

step "mailform plan --verify: the changes, each account checked against the real servers"
"$MAILFORM" plan "$LIVE/manifests" "${VARS[@]}" --verify

step "mailform apply: checks every created account first, then applies"
"$MAILFORM" apply "$LIVE/manifests" "${VARS[@]}" --auto-approve

step "mailform verify --send-test: log in and send a test message through each account"
"$MAILFORM" verify "$LIVE/manifests" "${VARS[@]}" --send-test

step "a broken account (carol: starttls on the implicit-TLS port): apply refuses everything"
sed -i "s/@DOMAIN/@$DOMAIN/g" "$LIVE/broken.yaml"
cp "$LIVE/broken.yaml" "$LIVE/manifests/carol.yaml"
set +e
"$MAILFORM" apply "$LIVE/manifests" "${VARS[@]}" --auto-approve
echo "(apply exited $?)"
set -e

step "mailform debug carol: every port/security combination, and a proposal"
set +e
"$MAILFORM" debug carol "$LIVE/manifests" "${VARS[@]}" --timeout 3 --fix
echo "(debug exited $?)"
set -e
echo "--- carol.yaml after --fix (comments kept):"
cat "$LIVE/manifests/carol.yaml"

step "apply again: carol now works"
"$MAILFORM" apply "$LIVE/manifests" "${VARS[@]}" --auto-approve

step "bounces: a campaign mail to an address that does not exist, and the inbox scan"
printf 'email,first_name\nnobody@%s,Nobody\nbob@%s,Bob\n' "$DOMAIN" "$DOMAIN" > "$LIVE/contacts.csv"
"$MAILFORM" contacts import "$LIVE/contacts.csv"
"$MAILFORM" verify "$LIVE/manifests" "${VARS[@]}" --account alice --send-test "nobody@$DOMAIN" >/dev/null
sleep 3   # Postfix writes the delivery status notification into alice's mailbox
"$MAILFORM" inbox scan alice
"$MAILFORM" contacts list

step "mailform state list"
"$MAILFORM" state list
