#!/bin/bash
# Run experiments/run_experiment.py a few chunks per process until nothing is left or the
# --stop-at time passes, so that engine commits landing in between are picked up (each call
# re-imports eventsnn). Usage: experiments/drive.sh CHUNKS_PER_CALL ARGS... (ARGS as for
# run_experiment.py, include --stop-at HH:MM).
cd "$(dirname "$0")/.." || exit 1
per=$1; shift
while true; do
  nice -n 5 .venv/bin/python experiments/run_experiment.py --max-chunks "$per" "$@"
  rc=$?
  [ $rc -eq 0 ] || break
done
echo "drive.sh: finished (last exit code $rc)"
