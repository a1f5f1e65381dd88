#!/bin/bash
# The sequence of runs of this session after the Fashion-MNIST main run (one process at a
# time, niced); each step is resumable and stops starting new chunks at its --stop-at time.
cd "$(dirname "$0")/.." || exit 1
PY="nice -n 5 .venv/bin/python"
$PY experiments/pooling.py --model fmnist-vgg --n 500 --T 4,8,16,32,64,128
$PY experiments/analog_limit.py --model fmnist-vgg --configs pnorm,pnorm-avgpool,pnorm-lipool,burst5-lipool
experiments/drive.sh 10 --model resnet20 --T 64 --configs burst5-lipool:256 --stop-at 19:38
$PY experiments/calibration.py --model resnet20 --T 64 --n-test 500 --stop-at 19:46
$PY experiments/calibration.py --model fmnist-vgg --T 64 --stop-at 19:58
experiments/drive.sh 10 --model resnet56 --T 64 --configs burst5-lipool:256 --stop-at 20:05
echo "queue.sh: done $(date -u)"
