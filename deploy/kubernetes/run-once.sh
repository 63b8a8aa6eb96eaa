#!/usr/bin/env bash
# One job now, never beside a scheduled one. `kubectl create job --from=cronjob/...` on its own
# bypasses the CronJob's concurrencyPolicy: Forbid, and the base's lock file lives in each pod's
# own /tmp, so nothing would stop the two from cancelling against one tenant at once. This
# takes the CronJob (an annotation only one run-once can add), suspends it, waits until none of
# its jobs is active, creates one job from it, waits for that job to end, and puts the schedule
# back as it was (also when the job fails or the script is interrupted). It runs what the
# CronJob runs (plan, or run once switched). Exit 0: the job succeeded; 1: it failed; 2: bad
# usage; 3: another run-once holds the CronJob; 4: the schedule could not be put back (the
# command that does it is printed).
#
#   deploy/kubernetes/run-once.sh NAMESPACE [CRONJOB]     e.g. run-once.sh zuora-reaper-sandbox
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: run-once.sh NAMESPACE [CRONJOB]" >&2; exit 2; }
ns=$1
cj=${2:-zuora-reaper}
poll=${RUN_ONCE_POLL_S:-5}
mark=zuora-reaper.io/run-once   # its value: the schedule's suspend before this run-once
k() { kubectl -n "$ns" "$@"; }

was=$(k get cronjob "$cj" -o 'jsonpath={.spec.suspend}')
was=${was:-false}
if ! k annotate cronjob "$cj" "$mark=$was" >/dev/null 2>&1; then  # no --overwrite: a mutex
  echo "run-once: another run-once holds cronjob/$cj (annotation $mark); if none runs:" >&2
  echo "  kubectl -n $ns annotate cronjob $cj $mark-" >&2
  exit 3
fi

restore() {
  local code=$? tries
  for tries in 1 2 3; do
    if k patch cronjob "$cj" --type merge -p "{\"spec\":{\"suspend\":$was}}" >/dev/null \
        && k annotate cronjob "$cj" "$mark-" >/dev/null; then
      exit "$code"
    fi
    sleep "$poll"
  done
  echo "run-once: could not put the schedule back; run:" >&2
  echo "  kubectl -n $ns patch cronjob $cj --type merge -p '{\"spec\":{\"suspend\":$was}}'" >&2
  echo "  kubectl -n $ns annotate cronjob $cj $mark-" >&2
  exit 4
}
trap restore EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

k patch cronjob "$cj" --type merge -p '{"spec":{"suspend":true}}' >/dev/null
while [ -n "$(k get cronjob "$cj" -o 'jsonpath={.status.active[*].name}')" ]; do
  echo "run-once: waiting for the scheduled job to end" >&2
  sleep "$poll"
done
job="$cj-manual-$(date +%s)"
k create job --from="cronjob/$cj" "$job"
while :; do
  state=$(k get job "$job" -o 'jsonpath={.status.succeeded}/{.status.failed}')
  case "$state" in
    1/*) echo "run-once: $job succeeded" >&2; exit 0 ;;
    */[1-9]*) echo "run-once: $job failed; kubectl -n $ns logs job/$job" >&2; exit 1 ;;
  esac
  sleep "$poll"
done
