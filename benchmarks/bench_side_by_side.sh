#!/bin/bash
# Two stock lerobot-train runs side by side (glam_mip on a merged mixture, mip on its first TARGET episodes), as
# the default recipe trains them, with and without a DataLoader worker each; prints steps/s and the pair's wall clock.
#
#   benchmarks/bench_side_by_side.sh runs/default/relabelled/mixture [TARGET_EPISODES=20] [STEPS=300]
set -euo pipefail
MIXTURE=${1:?usage: bench_side_by_side.sh MIXTURE [TARGET_EPISODES] [STEPS]}
TARGET=${2:-20}
STEPS=${3:-300}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
echo "# $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg); $STEPS steps each at batch 32, one torch thread each"
for NW in 1 0; do
  start=$(date +%s)
  for P in glam_mip mip; do
    extra=()
    [ "$P" = mip ] && extra=(--policy.action_chunk_column=true "--dataset.episodes=[$(seq -s, 0 $((TARGET - 1)))]")
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 uv run --no-sync lerobot-train --policy.type=$P --dataset.repo_id=local/bench \
      --dataset.root="$MIXTURE" --policy.push_to_hub=false --policy.device=cpu --steps="$STEPS" --batch_size=32 \
      --num_workers=$NW --seed=0 --log_freq=100 --save_freq="$STEPS" --output_dir="$OUT/$P-$NW" \
      --policy.mip_blocks=4 --policy.n_action_steps=8 --policy.optimizer_lr=0.0003 "${extra[@]}" \
      > "$OUT/$P-$NW.log" 2>&1 &
  done
  wait
  echo "num_workers=$NW: the pair in $(( $(date +%s) - start )) s"
  for P in glam_mip mip; do
    echo "  $P $(grep -a -o '[0-9.]*step/s' "$OUT/$P-$NW.log" | tail -1)"
  done
done
