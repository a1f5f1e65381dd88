#!/bin/bash
# Third queue: the MNIST / Fashion-MNIST ResNet-8, the MNIST VGG and the CIFAR-10 VGG
# (trained in models/), full test sets. Two chains, each one process at a time at nice 10
# (drive.sh adds nice 5 to the nice 5 given here) with 1 numba/OpenMP thread:
#   nice -n 5 experiments/queue3.sh A   # ResNet-8s
#   nice -n 5 experiments/queue3.sh B   # MNIST VGG, then CIFAR-10 VGG (waits for the models)
# Priority: Burst Γ=5 + LIPool to T=256, p-Norm and Max-norm first, then the other rows.
# Every step is resumable: the same command continues where it stopped.
cd "$(dirname "$0")/.." || exit 1
export NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
STOP=${STOP:-22:05}
wait_for() {  # wait_for FILE: until the training script has written it (or STOP passes)
  while [ ! -f "$1" ]; do
    [ "$(date -u +%H:%M)" \> "$STOP" ] && { echo "queue3.sh: $1 not there by $STOP"; exit 0; }
    sleep 60
  done
  sleep 30   # the .json sidecar is rewritten right after the .npz
}
first=burst5-lipool:256,pnorm,maxnorm
rest=burst2-lipool,pnorm-lipool,pnorm-avgpool
case "$1" in
  A)
    experiments/drive.sh 6 --model fmnist-resnet8 --T 64 --configs $first --stop-at "$STOP"
    experiments/drive.sh 6 --model mnist-resnet8 --T 64 --configs $first --stop-at "$STOP"
    experiments/drive.sh 6 --model fmnist-resnet8 --T 64 --configs $rest --stop-at "$STOP"
    experiments/drive.sh 6 --model mnist-resnet8 --T 64 --configs $rest --stop-at "$STOP"
    ;;
  B)
    wait_for models/mnist_vgg.npz
    experiments/drive.sh 6 --model mnist-vgg --T 64 --configs $first --stop-at "$STOP"
    experiments/drive.sh 6 --model mnist-vgg --T 64 --configs $rest --stop-at "$STOP"
    wait_for models/cifar10_vgg.npz
    experiments/drive.sh 3 --model cifar10-vgg --T 64 --configs burst5-lipool:256 --stop-at "$STOP"
    experiments/drive.sh 3 --model cifar10-vgg --T 64 --configs pnorm,maxnorm,$rest --stop-at "$STOP"
    ;;
  *) echo "usage: $0 A|B"; exit 2 ;;
esac
echo "queue3.sh $1: done $(date -u)"
