#!/usr/bin/env bash
# The main job on the example manifests, against fresh embedded (SQLite) registries, one per
# environment (demo/mailform.yaml), in a project folder made under demo/.state/project/ as a
# user's repository would be. Run through `make demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
MAILFORM="${MAILFORM:-.venv/bin/mailform}"
STATE=demo/.state
rm -rf "$STATE" && mkdir -p "$STATE/project"
cp -r manifests environments demo/mailform.yaml "$STATE/project/"
unset MAILFORM_REGISTRY MAILFORM_ENVIRONMENT   # the project file picks each environment's
export MAILFORM_ACTOR="demo"
# Demo-only secrets: real manifests point at your secret store through {env: …} / {file: …}.
export SUPPORT_SMTP_PASSWORD="demo-support-password" ALICE_SMTP_PASSWORD="demo-alice-password"
STAGING=(--config "$STATE/project/mailform.yaml" --environment staging)
PRODUCTION=(--config "$STATE/project/mailform.yaml" --environment production)

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "mailform validate (staging, then production)"
"$MAILFORM" validate "${STAGING[@]}"
"$MAILFORM" validate "${PRODUCTION[@]}"

step "mailform plan (staging) against a fresh registry"
"$MAILFORM" plan "${STAGING[@]}"

step "mailform apply --auto-approve (the example hosts are not reachable from here: --skip-verify)"
"$MAILFORM" apply "${STAGING[@]}" --auto-approve --skip-verify

step "mailform plan again: nothing to do"
"$MAILFORM" plan "${STAGING[@]}"

step "an operator edits the registry by hand; the next plan shows the drift"
"$MAILFORM" registry set support display_name="Help Desk" "${STAGING[@]}"
"$MAILFORM" plan "${STAGING[@]}" --target support

step "production: the same manifests, its own registry (empty so far) and variables"
set +e
"$MAILFORM" plan "${PRODUCTION[@]}" --detailed-exitcode
code=$?
set -e
echo "(plan --detailed-exitcode exited $code: 2 means there are changes)"

step "mailform state list"
"$MAILFORM" state list "${STAGING[@]}"
