#!/bin/sh
# Dual-Refinement, Market-1501 -> DukeMTMC-reID (R = 2). Extra options are forwarded.
# SEED=2 sh scripts/train_dual_refinement_market2duke.sh  uses seed 2 and source-pretrain-2.
exec sh "$(dirname "$0")/train_dual_refinement.sh" market1501 dukemtmc "${SEED:-1}" 2 "$@"
