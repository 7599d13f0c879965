#!/usr/bin/env bash
# The GPU runs of issue 12, one step per device call (each well under the 10-minute call limit).
# results/PLAN.md says what each run is for, the selection rule fixed before any number is seen,
# and what to do with the files each step leaves in $OUT.
#
#   EPIR_GIT_COMMIT=<sha of the clean tree> bash results/gpu_plan.sh STEP     (STEP = 1, 2, 3, 4 in order)
#
# Needs: the composite in .data/megc2019_composite (carried), and for step 3 the runs of steps 1-2
# in runs/ (carried). Writes runs/<name>/ and $OUT/runs-step<STEP>.tar.gz (checkpoints left out).
# A CPU smoke test of this script (tiny model, 2 folds, 1 epoch; tests nothing about accuracy):
#   DATA=../shared/data DEVICE=cpu PLAN_EXTRA="--folds sub01,s03 --epochs 1 --model-set dim=32
#   --model-set dim_head=8 --model-set mlp_dim=64" OUT=/tmp/plan bash results/gpu_plan.sh 1
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
OUT=${OUT:-runs/out}
mkdir -p "$OUT" runs
export PYTHONUNBUFFERED=1

# A copy of the tree without .git cannot find its commit: refuse to make reports that cannot say it.
$PY -c "from epir_core.provenance import git_commit; import sys; sys.exit(git_commit()[0] is None)" \
  || { echo "error: no git commit: set EPIR_GIT_COMMIT to the commit this tree is" >&2; exit 2; }

DATA=${DATA:-.data}
DEVICE=${DEVICE:-cuda}
read -r -a EXTRA <<< "${PLAN_EXTRA:-}"  # appended to every LOSO command: only for the smoke test
COMMON=(--data "$DATA" --device "$DEVICE" --no-checkpoints --json)
# The candidates for the headline recipe. Each selects its epoch and fits its temperatures on the
# inner-validation subjects of every fold (15% of the training subjects per data set).
HONEST="--select val --calibrate"
AUG="--flip --rotate 10 --tta-flip"
REG="--mixup 0.2 --label-smoothing 0.1 --weight-decay 0.05 --ema 0.999 --model-set drop_path=0.1"
SHORT="--epochs 150 --schedule cosine --class-balance"
declare -A RECIPE=(
  [cal-base]="$HONEST"
  [x-aug]="$HONEST $AUG"
  [x-reg]="$HONEST $AUG $REG"
  [x-short]="$HONEST $AUG $REG $SHORT"
)
CANDIDATES=(runs/cal-base runs/x-aug runs/x-reg runs/x-short)

loso() {  # loso NAME SEEDS: one LOSO run of candidate NAME's recipe (word splitting of RECIPE intended)
  # shellcheck disable=SC2086
  $PY -m train.loso --out "runs/$1" "${COMMON[@]}" ${RECIPE[$1]} "${EXTRA[@]}" --seeds "$2" --resume | tee "$OUT/$1-seeds-${2//,/_}.json"
}

case "${1:-}" in
  1)  # the paper's recipe with calibration, and + flow-aware augmentation (~170 s each)
    loso cal-base 0
    loso x-aug 0
    names=(cal-base x-aug) ;;
  2)  # + regularisation; + a shorter cosine schedule with class balance (~180 s + ~90 s)
    loso x-reg 0
    loso x-short 0
    names=(x-reg x-short) ;;
  3)  # the rule fixed in PLAN.md: best mean inner-validation UF1 over seed 0's folds -> seeds 1, 2
      # (runs/ of steps 1-2 stay on a warm machine, and are carried in case it was not kept);
      # the per-fold selection over the same candidates; the shipped model with the chosen recipe
    best=$($PY -m train.results pick "${CANDIDATES[@]}")
    name=$(basename "$best")
    echo "$name" > "$OUT/picked.txt"
    loso "$name" 0,1,2
    $PY -m train.results select "${CANDIDATES[@]}" --out runs/x-selected
    $PY -m train.fit --data "$DATA" --device "$DEVICE" --recipe-from "$best" --out "$OUT/epir_cde.pt" --json | tee "$OUT/fit.json"
    names=("$name" x-selected) ;;
  4)  # Table 4's missing rows: honest (fixed epochs, last weights), 1 seed like the other rows (~180 s each)
    for preset in +itals +spt; do
      $PY -m train.loso --out "runs/abl-${preset#+}" "${COMMON[@]}" --preset "$preset" "${EXTRA[@]}" --seeds 0 | tee "$OUT/abl-${preset#+}.json"
    done
    names=(abl-itals abl-spt) ;;
  *) echo "usage: EPIR_GIT_COMMIT=<sha> bash results/gpu_plan.sh 1|2|3|4" >&2; exit 2 ;;
esac
tar czf "$OUT/runs-step$1.tar.gz" --exclude=checkpoints -C runs "${names[@]}"
