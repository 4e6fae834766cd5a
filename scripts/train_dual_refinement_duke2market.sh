#!/bin/sh
# Dual-Refinement, DukeMTMC-reID -> Market-1501 (R = 5). Extra options are forwarded.
# SEED=2 sh scripts/train_dual_refinement_duke2market.sh  uses seed 2 and source-pretrain-2.
exec sh "$(dirname "$0")/train_dual_refinement.sh" dukemtmc market1501 "${SEED:-1}" 5 "$@"
