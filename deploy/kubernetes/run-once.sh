#!/usr/bin/env bash
# One job now, never beside a scheduled one. `kubectl create job --from=cronjob/...` on its own
# bypasses the CronJob's concurrencyPolicy: Forbid, and the base's lock file lives in each pod's
# own /tmp, so nothing would stop the two from cancelling against one tenant at once. This
# suspends the CronJob, waits until none of its jobs is active, creates one job from it, waits
# for that job to end, and puts the schedule back as it was (also when interrupted or failing).
# It runs what the CronJob runs (plan, or run once switched). Exits 0 when the job succeeded.
#
#   deploy/kubernetes/run-once.sh NAMESPACE [CRONJOB]     e.g. run-once.sh zuora-reaper-sandbox
set -euo pipefail
ns=${1:?usage: run-once.sh NAMESPACE [CRONJOB]}
cj=${2:-zuora-reaper}
poll=${RUN_ONCE_POLL_S:-5}
k() { kubectl -n "$ns" "$@"; }

was=$(k get cronjob "$cj" -o 'jsonpath={.spec.suspend}')
k patch cronjob "$cj" --type merge -p '{"spec":{"suspend":true}}' >/dev/null
trap 'k patch cronjob "$cj" --type merge -p "{\"spec\":{\"suspend\":${was:-false}}}" >/dev/null' EXIT
while [ -n "$(k get cronjob "$cj" -o 'jsonpath={.status.active[*].name}')" ]; do
  echo "run-once: waiting for the scheduled job to end" >&2
  sleep "$poll"
done
job="$cj-manual-$(date +%s)"
k create job --from="cronjob/$cj" "$job"
while :; do
  done_=$(k get job "$job" -o 'jsonpath={.status.succeeded}/{.status.failed}')
  case "$done_" in
    1/*) echo "run-once: $job succeeded" >&2; exit 0 ;;
    */[1-9]*) echo "run-once: $job failed; kubectl -n $ns logs job/$job" >&2; exit 1 ;;
  esac
  sleep "$poll"
done
