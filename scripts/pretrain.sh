#!/bin/sh
# Stage 1: supervised pre-training on SOURCE, direct-transfer test on TARGET.
# NPROC=N (and NNODES/NODE_RANK/MASTER_ADDR/MASTER_PORT) start N processes per machine
# with torchrun (see scripts/launch.sh); unset: one python process.
# Usage: sh scripts/pretrain.sh <SOURCE> <TARGET> <SEED> [extra options for examples/source_pretrain.py]
# Uses every visible GPU (DataParallel), or the CPU when there is none; pick GPUs
# with CUDA_VISIBLE_DEVICES. Extra options come last, so they override these.
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
# Every other setting is the paper's default (dualref/configs.py, PretrainConfig).
run_driver examples/source_pretrain.py -ds "${SOURCE}" -dt "${TARGET}" --seed "${SEED}" \
	--logs-dir "logs/${SOURCE}TO${TARGET}/source-pretrain-${SEED}" "$@"
