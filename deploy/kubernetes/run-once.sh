#!/usr/bin/env bash
# One job now, never beside a scheduled one. `kubectl create job --from=cronjob/...` on its own
# bypasses the CronJob's concurrencyPolicy: Forbid, and the base's lock file lives in each pod's
# own /tmp, so nothing would stop the two from cancelling against one tenant at once. This
# takes a lock (a ConfigMap, whose creation only one run-once can win), suspends the CronJob,
# waits until none of its jobs is active, creates one job from it, waits for that job to end,
# and puts the schedule back as it was (also when the job fails or the script is interrupted).
# It runs what the CronJob runs (plan, or run once switched). A kubectl call that fails while
# waiting is tried again; nothing is decided on a status that was not read.
#
# Exit: 0 the job succeeded; 1 it failed; 2 bad usage; 3 another run-once holds the lock;
# 4 the schedule could not be put back (the commands that do it are printed); 5 kubectl failed
# before a job was created.
#
#   deploy/kubernetes/run-once.sh NAMESPACE [CRONJOB]     e.g. run-once.sh zuora-reaper-sandbox
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: run-once.sh NAMESPACE [CRONJOB]" >&2; exit 2; }
ns=$1
cj=${2:-zuora-reaper}
poll=${RUN_ONCE_POLL_S:-5}
lock="$cj-run-once"
k() { kubectl -n "$ns" "$@"; }
fail() { echo "run-once: $1" >&2; exit 5; }

if ! out=$(k create configmap "$lock" --from-literal=holder="$(hostname)-$$" 2>&1); then
  case "$out" in
    *AlreadyExists*|*"already exists"*)
      echo "run-once: another run-once holds configmap/$lock; if none runs, restore the" >&2
      echo "  schedule as its data says and: kubectl -n $ns delete configmap $lock" >&2
      exit 3 ;;
  esac
  fail "cannot take the lock configmap/$lock: $out"
fi

was=""
restore() {
  local code=$? tries
  if [ -z "$was" ]; then  # the schedule was not touched: only the lock to give back
    k delete configmap "$lock" >/dev/null 2>&1 || true
    exit "$code"
  fi
  for tries in 1 2 3; do
    if k patch cronjob "$cj" --type merge -p "{\"spec\":{\"suspend\":$was}}" >/dev/null \
        && k delete configmap "$lock" >/dev/null; then
      exit "$code"
    fi
    sleep "$poll"
  done
  echo "run-once: could not put the schedule back; run:" >&2
  echo "  kubectl -n $ns patch cronjob $cj --type merge -p '{\"spec\":{\"suspend\":$was}}'" >&2
  echo "  kubectl -n $ns delete configmap $lock" >&2
  exit 4
}
trap restore EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

suspended=$(k get cronjob "$cj" -o 'jsonpath={.spec.suspend}') || fail "cannot read cronjob/$cj"
k patch configmap "$lock" --type merge -p "{\"data\":{\"suspend\":\"${suspended:-false}\"}}" \
  >/dev/null || fail "cannot record the schedule in configmap/$lock"
was=${suspended:-false}
k patch cronjob "$cj" --type merge -p '{"spec":{"suspend":true}}' >/dev/null \
  || fail "cannot suspend cronjob/$cj"
until active=$(k get cronjob "$cj" -o 'jsonpath={.status.active[*].name}') && [ -z "$active" ]; do
  echo "run-once: waiting for the scheduled job to end" >&2
  sleep "$poll"
done
job="$cj-manual-$(date +%s)"
k create job --from="cronjob/$cj" "$job" || fail "cannot create the job"
while :; do
  if state=$(k get job "$job" -o 'jsonpath={.status.succeeded}/{.status.failed}'); then
    case "$state" in
      1/*) echo "run-once: $job succeeded" >&2; exit 0 ;;
      */[1-9]*) echo "run-once: $job failed; kubectl -n $ns logs job/$job" >&2; exit 1 ;;
    esac
  fi
  sleep "$poll"
done
