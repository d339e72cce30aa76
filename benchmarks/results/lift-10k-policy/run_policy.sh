#!/usr/bin/env bash
# usage: [SEED=s] run_policy.sh NAME POLICY DATASET_ROOT REPO_ID   (2000 steps, batch 32, then 50 held-out rollouts)
set -e
cd "$(dirname "$0")"
export MUJOCO_GL=egl OMP_NUM_THREADS=1
B=$(dirname "$(command -v glam-lerobot)")
name=$1; policy=$2; root=$3; repo=$4
[ -f $name/train.done ] || { rm -rf $name/train; mkdir -p $name; $B/lerobot-train --policy.type=$policy --dataset.repo_id=$repo --dataset.root=$root \
  --policy.push_to_hub=false --policy.device=cpu --steps=2000 --batch_size=32 --num_workers=1 --seed=${SEED:-0} --log_freq=100 \
  --save_freq=2000 --policy.mip_blocks=4 --policy.n_action_steps=8 --output_dir=$name/train > $name/train.log 2>&1; touch $name/train.done; }
rm -rf $name/eval
$B/lerobot-eval --policy.path=$name/train/checkpoints/last/pretrained_model --env.type=glam_kinova --env.task=lift \
  --env.image_size=64 --eval.n_episodes=50 --eval.batch_size=1 --seed=9000000 --policy.device=cpu --output_dir=$name/eval > $name/eval.log 2>&1
