#!/bin/bash
# Replaced chain B of queue3.sh at 21:13 UTC so that the CIFAR-10 VGG starts as soon as its
# training ends, in parallel with the MNIST VGG rows instead of after them.
#   nice -n 5 experiments/queue4.sh B   # MNIST VGG: rows after the priority ones
#   nice -n 5 experiments/queue4.sh C   # CIFAR-10 VGG (waits for models/cifar10_vgg.npz)
cd "$(dirname "$0")/.." || exit 1
export NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
STOP=${STOP:-22:05}
case "$1" in
  B)
    # after the priority rows (burst5-lipool:256,pnorm,maxnorm) of queue3.sh B
    while pgrep -f "model mnist-vgg --T 64 --configs burst5-lipool:256" >/dev/null; do sleep 20; done
    experiments/drive.sh 6 --model mnist-vgg --T 64 --configs burst5-lipool:256,pnorm,maxnorm --stop-at "$STOP"
    experiments/drive.sh 6 --model mnist-vgg --T 64 --configs burst2-lipool,pnorm-lipool,pnorm-avgpool --stop-at "$STOP"
    ;;
  C)
    while [ ! -f models/cifar10_vgg.npz ]; do
      [ "$(date -u +%H:%M)" \> "$STOP" ] && exit 0
      sleep 30
    done
    while pgrep -f "train_vgg_cifar10.py" >/dev/null; do sleep 10; done   # sidecar JSON final
    experiments/drive.sh 2 --model cifar10-vgg --T 64 --configs burst5-lipool:256 --stop-at "$STOP"
    experiments/drive.sh 3 --model cifar10-vgg --T 64 --configs pnorm,maxnorm,burst2-lipool,pnorm-lipool,pnorm-avgpool --stop-at "$STOP"
    ;;
  *) echo "usage: $0 B|C"; exit 2 ;;
esac
echo "queue4.sh $1: done $(date -u)"
# Run by hand besides these chains, in the last 15 minutes (free CPU after the MNIST runs):
#   nice -n 5 experiments/drive.sh 2 --model cifar10-vgg --T 64 --configs burst5-lipool:256 \
#       --chunks 70-99 --stop-at 22:05
#   nice -n 5 experiments/drive.sh 3 --model cifar10-vgg --T 64 \
#       --configs pnorm,maxnorm,burst2-lipool,pnorm-lipool,pnorm-avgpool --chunks 99,98,...,40 --stop-at 22:05
# (disjoint chunks from the other end, so the two processes of one model never ran the same chunk;
# chain C's Table 1 step was stopped once the Burst Γ=5 row was complete, the rows were already
# running in a separate process started when queue3.sh A ended)
# and experiments/pooling.py --model mnist-vgg --n 500, experiments/pooling.py --model cifar10-vgg --n 300.
