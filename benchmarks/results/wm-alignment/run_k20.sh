#!/usr/bin/env bash
# 20 Kinova (seeds 0-19) + the same 20 UMI lift episodes: does the IDM's overfit shrink with target data?
set -e
export MUJOCO_GL=egl OMP_NUM_THREADS=1 GLAM_LEROBOT_CACHE=/work/exp/cache
B=/work/main/.venv/bin
[ -d kinova_lift20 ] || $B/glam-lerobot sim record --embodiment kinova --task lift --episodes 20 --seed 0 --root kinova_lift20 --image-size 64 --masks --workers 1
cat > mixture.yaml <<YAML
name: lift_kinova20_umi
target:
  - {repo_id: local/kinova_lift20, root: kinova_lift20}
auxiliary:
  - {repo_id: local/umi_lift, root: /work/exp/data/umi_lift}
YAML
$B/glam-lerobot train-wm --mixture mixture.yaml --output wm_k20 --input masks --steps 1500 --batch-size 32 --seed 0 --threads 1 --save-every 1500 --log-every 50 --diagnose-target /work/exp/data/kinova_pairs24 --diagnose-aux /work/exp/data/umi_pairs24 --diagnose-every 500
$B/python /work/main/benchmarks/wm_overfit_probe.py --world-model wm_k20 --train kinova_lift20 --held-out /work/exp/data/kinova_pairs24
