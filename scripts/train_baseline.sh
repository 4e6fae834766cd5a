#!/bin/sh
# Stage 2 baseline: clustering-based adaptation without LR and IM-SP.
# NPROC=N (and NNODES/NODE_RANK/MASTER_ADDR/MASTER_PORT) start N processes per machine
# with torchrun (see scripts/launch.sh); unset: one python process.
# Usage: sh scripts/train_baseline.sh <SOURCE> <TARGET> <SEED> [extra options for examples/baseline_train.py]
# Needs logs/<SOURCE>TO<TARGET>/source-pretrain-<SEED>/model_best.pth.tar (scripts/pretrain.sh).
if [ $# -lt 3 ]
  then
    echo "Arguments error: <SOURCE> <TARGET> <SEED> [extra options...]"
    exit 1
fi
SOURCE=$1
TARGET=$2
SEED=$3
shift 3

. "$(dirname "$0")/launch.sh"
# Every other setting is the paper's default (dualref/configs.py, BaselineConfig).
run_driver examples/baseline_train.py -ds "${SOURCE}" -dt "${TARGET}" --seed "${SEED}" \
	--init "logs/${SOURCE}TO${TARGET}/source-pretrain-${SEED}/model_best.pth.tar" \
	--logs-dir "logs/${SOURCE}TO${TARGET}/Baseline/seed${SEED}" "$@"
