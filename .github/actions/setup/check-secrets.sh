#!/usr/bin/env bash
# Names every CI secret the stack's job lacks, one line each with where to add it, before pulumi
# fails on the first one with a vaguer message. Prints names only, never a value.
#
#   check-secrets.sh <stack>
#
# Which secrets are needed follows the backend: a self-managed one (PULUMI_BACKEND_URL s3://...)
# needs the passphrase and, for S3/R2, the bucket's keys; Pulumi Cloud (no PULUMI_BACKEND_URL,
# or an https:// one) needs PULUMI_ACCESS_TOKEN.
set -euo pipefail

stack=${1:-}
if [[ -z $stack ]]; then
  echo "usage: check-secrets.sh <stack> (for example: check-secrets.sh production)" >&2
  exit 2
fi

missing=()
status=0
need() {
  [[ -n ${!1:-} ]] || missing+=("$1")
}

backend=${PULUMI_BACKEND_URL:-}
if [[ -z $backend && -z ${PULUMI_ACCESS_TOKEN:-} ]]; then
  # Neither road is set up: name both rather than guess which one was meant.
  echo "::error title=CI secret missing::neither PULUMI_BACKEND_URL (the R2 state bucket) nor" \
       "PULUMI_ACCESS_TOKEN (Pulumi Cloud) is set for stack $stack; see README 'Deploying for real'"
  status=1
elif [[ -z $backend || $backend == https://* ]]; then
  need PULUMI_ACCESS_TOKEN
else
  need PULUMI_CONFIG_PASSPHRASE
  if [[ $backend == s3://* ]]; then
    need AWS_ACCESS_KEY_ID
    need AWS_SECRET_ACCESS_KEY
  fi
fi
need CLOUDFLARE_API_TOKEN

for name in "${missing[@]}"; do
  echo "::error title=CI secret missing::$name is not set for stack $stack: add it under" \
       "Settings > Secrets and variables > Actions (environment '$stack', or the repository" \
       "when both stacks share it); see README 'Deploying for real'"
done
(( ${#missing[@]} == 0 && status == 0 ))
