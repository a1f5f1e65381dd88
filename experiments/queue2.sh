#!/bin/bash
# Second half of this session's queue (replaced queue.sh at 19:15 UTC to give the full
# ResNet20 Table 2 run more time); one process at a time, niced, each step resumable.
cd "$(dirname "$0")/.." || exit 1
PY="nice -n 5 .venv/bin/python"
experiments/drive.sh 10 --model resnet20 --T 64 --configs burst5-lipool:256 --stop-at 19:45
$PY experiments/calibration.py --model resnet20 --T 64 --n-test 500 --stop-at 19:52
$PY experiments/calibration.py --model fmnist-vgg --T 64 --stop-at 19:59
experiments/drive.sh 10 --model resnet56 --T 64 --configs burst5-lipool:256 --stop-at 20:04
echo "queue2.sh: done $(date -u)"
