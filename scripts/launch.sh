#!/bin/sh
# Sourced by the other scripts: run_driver DRIVER.py [options...] starts the driver
#   - with plain python (default): one process, DataParallel over every visible GPU, or the CPU;
#   - with torchrun when NPROC (processes per machine) or NNODES is set: DistributedDataParallel,
#     one process per GPU. Multi-machine: NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT.
# Examples:  NPROC=4 sh scripts/pretrain.sh dukemtmc market1501 1
#            NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 NPROC=8 sh scripts/pretrain.sh ...
# -b stays the global batch: each of the N processes trains on batch / N images.
run_driver() {
	if [ -z "${NPROC:-}" ] && [ -z "${NNODES:-}" ]; then
		exec python "$@"
	fi
	if [ "${NNODES:-1}" -gt 1 ]; then
		exec ${TORCHRUN:-torchrun} --nnodes "${NNODES}" --node_rank "${NODE_RANK:-0}" \
			--nproc_per_node "${NPROC:-1}" --master_addr "${MASTER_ADDR:?set MASTER_ADDR for NNODES > 1}" \
			--master_port "${MASTER_PORT:-29500}" "$@"
	fi
	exec ${TORCHRUN:-torchrun} --standalone --nnodes 1 --nproc_per_node "${NPROC:-1}" "$@"
}
