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
# Every other setting is the paper's default (dualref/configs.py, AdaptConfig).
run_driver examples/dual_refine_train.py -ds "${SOURCE}" -dt "${TARGET}" --seed "${SEED}" --R "${R}" \
	--init "logs/${SOURCE}TO${TARGET}/source-pretrain-${SEED}/model_best.pth.tar" \
	--logs-dir "logs/${SOURCE}TO${TARGET}/DualRefinement/seed${SEED}" "$@"
