#!/bin/sh
# Every GPU row the README still marks "not yet measured", in one run:
#   1. training / extraction throughput: fp32, bf16, fp16, channels-last off / on,
#      ResNet-50 at 256x128, batch 64 and 128            -> OUT/throughput.json
#   2. the pseudo-label stage on the GPU at Market, Duke and MSMT17 sizes
#      (floor, Jaccard, eps, DBSCAN, refinement)         -> OUT/pseudo_labels.json
#   3. one torchrun run (NCCL on GPUs, gloo on the CPU), one process per visible
#      GPU: a short stage 1 on generated synthetic data   -> OUT/torchrun/
# Each step's console output goes to OUT/<step>.log; a failed step is reported
# and the next one still runs (the exit status is that of the last failure).
#
# Usage: sh benchmarks/gpu_rows.sh [OUT]        (default: benchmarks/results/gpu)
#        QUICK=1 DEVICE=cpu sh benchmarks/gpu_rows.sh /tmp/rows   # a small smoke run
set -u
cd "$(dirname "$0")/.."  # the repository root; the package need not be installed
export PYTHONPATH="$(pwd)${PYTHONPATH:+:${PYTHONPATH}}"
OUT=${1:-benchmarks/results/gpu}
DEVICE=${DEVICE:-cuda}
mkdir -p "${OUT}"
status=0

if [ "${DEVICE}" = cuda ]; then
	NPROC=${NPROC:-$(python -c "import torch; print(max(1, torch.cuda.device_count()))")}
	nvidia-smi > "${OUT}/nvidia-smi.txt" 2>&1 || true
else
	NPROC=${NPROC:-1}
fi
python -c "import sys, torch; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda)" \
	> "${OUT}/versions.txt" 2>&1

if [ -n "${QUICK:-}" ]; then
	THROUGHPUT="--arch resnet18 --height 64 --width 32 --batch-sizes 8 --iters 2 --warmup 1"
	SIZES="--sizes 2000"
	TRAIN="-a resnet18 --height 64 --width 32 -b 16 --epochs 1 --iters 4 --eval-step 1"
else
	THROUGHPUT=""
	SIZES=""
	TRAIN="-a resnet50 --height 128 --width 64 -b 64 --epochs 2 --iters 50 --eval-step 1"
fi

step() {  # step NAME COMMAND...: run, time, log; remember a failure and go on
	name=$1
	shift
	start=$(date +%s)
	echo "== ${name}: $*"
	if "$@" > "${OUT}/${name}.log" 2>&1; then
		echo "   ok in $(( $(date +%s) - start )) s"
	else
		status=$?
		echo "   FAILED (exit ${status}) after $(( $(date +%s) - start )) s; see ${OUT}/${name}.log"
		tail -n 5 "${OUT}/${name}.log"
	fi
}

# shellcheck disable=SC2086  # the option strings are meant to split
step throughput python benchmarks/throughput.py --device "${DEVICE}" ${THROUGHPUT} \
	--out "${OUT}/throughput.json"
# shellcheck disable=SC2086
step pseudo_labels python benchmarks/pseudo_labels.py --device "${DEVICE}" --dense-max 0 ${SIZES} \
	--out "${OUT}/pseudo_labels.json"

DATA="${OUT}/torchrun/data"
step synthetic_data python -m dualref.datasets.synthetic "${DATA}" --seed 0
# shellcheck disable=SC2086
step torchrun env NPROC="${NPROC}" sh scripts/pretrain.sh dukemtmc market1501 1 --data-dir "${DATA}" \
	--device "${DEVICE}" --no-pretrained -j 2 ${TRAIN} --logs-dir "${OUT}/torchrun/logs"
rm -rf "${DATA}"
exit "${status}"
