#!/bin/sh
# Evaluate a checkpoint on a target dataset.
# NPROC=N (and NNODES/NODE_RANK/MASTER_ADDR/MASTER_PORT) start N processes per machine
# with torchrun (see scripts/launch.sh); unset: one python process.
# Usage: sh scripts/test.sh <TARGET> <MODEL_PATH> [extra options for examples/test_model.py]
if [ $# -lt 2 ]
  then
    echo "Arguments error: <TARGET> <MODEL PATH> [extra options...]"
    exit 1
fi
TARGET=$1
MODEL=$2
shift 2

. "$(dirname "$0")/launch.sh"
# -j 8 as the original script; every other setting is the default (TestConfig).
run_driver examples/test_model.py -j 8 --dataset-target "${TARGET}" --resume "${MODEL}" "$@"
