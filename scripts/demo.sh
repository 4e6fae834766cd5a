#!/bin/sh
# End-to-end demo on the built-in synthetic two-domain data (no download, CPU friendly).
# Usage: sh scripts/demo.sh [extra options for every driver, e.g. --device cuda]
#
# Steps (Duke-like -> Market-like, the paper's main direction):
#   0. generate examples/data/{market1501,dukemtmc} if absent (seed 0, a few seconds)
#   1. source pre-training on dukemtmc; its results.json "direct_transfer" is the
#      lower bound on market1501                                   -> logs/demo/pretrain
#   2. baseline (DBSCAN pseudo-labels, CE + triplet)               -> logs/demo/baseline
#   3. LR only      (--alpha 0.5 --mu 0)                           -> logs/demo/lr_only
#   4. IM-SP only   (--alpha 0   --mu 0.1)                         -> logs/demo/imsp_only
#   5. Dual-Refinement (--alpha 0.5 --mu 0.1)                      -> logs/demo/dual
#   6. ranked lists of 4 queries, direct transfer vs Dual-Refinement -> figs/ranked_lists_*.png
#   7. Table 2 layout and plots in figs/ (python -m dualref.report)
# About 10 minutes on a 2-core CPU with no other load (ResNet-18, 64x32 images,
# no ImageNet weights). Settings scaled down from the paper's to fit the tiny data:
# crop padding 3 px instead of 10 (10 px at 256x128 is the same share of the image),
# no random erasing in adaptation (at 64x32 one erased box hides most of a person:
# measured, it costs 2-6 mAP here), rho 5e-3 instead of 1.6e-3, 8 epochs x 40
# iterations, batch 32, Dual-Refinement lr decay at epoch 6. The method defaults
# of the library are unchanged.
# Extra options come last, so they override these (e.g. -j 4 on a bigger machine).
set -e

# The last step draws plots: say so now, not after the training.
python -c "import matplotlib" 2>/dev/null || {
	echo "demo.sh: the demo's plots need matplotlib; install it first: pip install -e \".[plots,test]\"" >&2
	exit 2
}

# Folders can be moved with environment variables (the tests use a temporary place);
# PRETRAIN_OPTS / ADAPT_OPTS add options to the pre-training / adaptation runs only.
DATA=${DATA:-examples/data}
LOGS=${LOGS:-logs/demo}
FIGS=${FIGS:-figs}
SOURCE=dukemtmc
TARGET=market1501
COMMON="-ds ${SOURCE} -dt ${TARGET} -a resnet18 --height 64 --width 32 -b 32 -j 0 \
--data-dir ${DATA} --seed 1 --print-freq 100 --quiet --pad 3"
ADAPT="--init ${LOGS}/pretrain/model_best.pth.tar --rho 5e-3 --epochs 8 --iters 40 \
--no-random-erasing ${ADAPT_OPTS:-}"

if [ ! -f "${DATA}/${TARGET}/.synthetic_complete.json" ] || \
   [ ! -f "${DATA}/${SOURCE}/.synthetic_complete.json" ]; then
	python -m dualref.datasets.synthetic "${DATA}" --seed 0
fi

python examples/source_pretrain.py ${COMMON} --no-pretrained --lr 1e-3 \
	--epochs 30 --iters 20 --warmup-step 2 --milestones 20 --eval-step 10 \
	--logs-dir "${LOGS}/pretrain" ${PRETRAIN_OPTS:-} "$@"

python examples/baseline_train.py ${COMMON} ${ADAPT} \
	--logs-dir "${LOGS}/baseline" "$@"

python examples/dual_refine_train.py ${COMMON} ${ADAPT} --epochs_decay 6 \
	--alpha 0.5 --mu 0 --logs-dir "${LOGS}/lr_only" "$@"

python examples/dual_refine_train.py ${COMMON} ${ADAPT} --epochs_decay 6 \
	--alpha 0 --mu 0.1 --logs-dir "${LOGS}/imsp_only" "$@"

python examples/dual_refine_train.py ${COMMON} ${ADAPT} --epochs_decay 6 \
	--alpha 0.5 --mu 0.1 --logs-dir "${LOGS}/dual" "$@"

# Ranked lists of the same queries before and after adaptation.
for RUN in pretrain:direct_transfer dual:dual_refinement; do
	python examples/test_model.py -dt "${TARGET}" -a resnet18 --height 64 --width 32 -j 0 \
		--data-dir "${DATA}" --quiet --resume "${LOGS}/${RUN%%:*}/model_best.pth.tar" \
		--vis-ranks 4 --vis-path "${FIGS}/ranked_lists_${RUN##*:}.png" > /dev/null
done

python -m dualref.report "${LOGS}/pretrain" "${LOGS}/baseline" "${LOGS}/lr_only" \
	"${LOGS}/imsp_only" "${LOGS}/dual" --out "${FIGS}" --title "Synthetic Duke -> Market (CPU demo)"
