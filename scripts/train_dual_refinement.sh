#!/bin/sh
# Dual-Refinement (baseline + off-line label refinement + instance-memory spread-out).
# NPROC=N (and NNODES/NODE_RANK/MASTER_ADDR/MASTER_PORT) start N processes per machine
# with torchrun (see scripts/launch.sh); unset: one python process.
# Usage: sh scripts/train_dual_refinement.sh <SOURCE> <TARGET> <SEED> <R> [extra options for examples/dual_refine_train.py]
# The two scripts of the original README call this one with the paper's settings.
if [ $# -lt 4 ]
  then
    echo "Arguments error: <SOURCE> <TARGET> <SEED> <R> [extra options...]"
    exit 1
fi
SOURCE=$1
TARGET=$2
SEED=$3
R=$4
shift 4

. "$(dirname "$0")/launch.sh"
run_driver examples/dual_refine_train.py -ds "${SOURCE}" -dt "${TARGET}" -a resnet50 --seed "${SEED}" \
	--num-instances 4 --lr 0.00035 --iters 400 -b 64 --dropout 0 --lambda-value 0 \
	--init "logs/${SOURCE}TO${TARGET}/source-pretrain-${SEED}/model_best.pth.tar" \
	--logs-dir "logs/${SOURCE}TO${TARGET}/DualRefinement/seed${SEED}" \
	--alpha 0.5 --mu 0.1 --knn 6 --R "${R}" \
	--epochs 40 --epochs_decay 20 --rho 1.6e-3 "$@"
