#!/bin/bash
# (the record of the measurement: it read the relabelled mixture of the default run with --set seed=2)
# two lerobot-train side by side, 300 steps each, num_workers=$1
NW=$1
for p in glam_mip mip; do
  extra=""
  [ $p = mip ] && extra="--policy.action_chunk_column=true --dataset.episodes=[$(seq -s, 0 19)]"
  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 /work/main/.venv/bin/lerobot-train --policy.type=$p --dataset.repo_id=local/lift_kinova_umi-glam --dataset.root=/work/exp/def20_s2/relabelled/mixture --policy.push_to_hub=false --policy.device=cpu --steps=300 --batch_size=32 --num_workers=$NW --seed=2 --log_freq=100 --save_freq=300 --output_dir=/tmp/nw/out-$p-$NW --dataset.video_backend=torchcodec --policy.mip_blocks=4 --policy.n_action_steps=8 --policy.optimizer_lr=0.0003 $extra > /tmp/nw/log-$p-$NW.txt 2>&1 &
done
wait
