#!/usr/bin/env bash
# Rebuild the model shipped in pointcam_ros/models/ from scratch, on CPU or CUDA:
# simulate train/val/test scenes (disjoint seeds; street, campus and open scenes, 45-100 m
# wide), cut them with both segmentation designs, train, calibrate (temperature on the
# range-cut val set), evaluate, fit the novelty statistics (pointcam_novelty: 300 simulated
# scenes from seed 5,100,000, ~2 min on 2 cores), install.
#   scripts/train_default_model.sh [extra pointcam_train args, e.g. --epochs 30]
# Input: each object in the sensor's view plus its range and each point's height above the
# local ground (view_ground, the pointcam_train default), mirrored about the line of sight for
# half of the objects (--mirror). Training objects: scenes 0-1599 of the train split cut by
# the voxel design and scenes 1600-2799 cut by the range design (the default), so the model
# knows the pieces of both.
# The shipped model (0.2.0) was not trained from scratch: it was fine-tuned from the model of
# 0.1.0 (itself fine-tuned twice from the view_range model, see docs/model.md) in one run of
# 3 epochs on a 2-core CPU with one torch thread (OMP_NUM_THREADS=1, ~1,020 s per epoch):
#   scripts/train_default_model.sh --init <0.1.0 model.pt> --epochs 3 --lr 5e-4 --select best \
#       --seed 2
# Data sets left in $WORK by versions before the height channel are refused: delete them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BIN=.venv/bin
WORK=${POINTCAM_WORK:-out/default_model}
mkdir -p "$WORK"
sim() { $BIN/pointcam_dataset sim "$@"; }
[[ -f $WORK/train_voxel.npz ]] || sim --split train --scenes 1600 --segmentation voxel \
    --out "$WORK/train_voxel.npz"
[[ -f $WORK/train_range.npz ]] || sim --split train --first-scene 1600 --scenes 1200 \
    --segmentation range --out "$WORK/train_range.npz"
[[ -f $WORK/train.npz ]] || $BIN/pointcam_dataset merge "$WORK/train_voxel.npz" \
    "$WORK/train_range.npz" --out "$WORK/train.npz"
[[ -f $WORK/val.npz ]] || sim --split val --scenes 150 --segmentation range --out "$WORK/val.npz"
[[ -f $WORK/test.npz ]] || sim --split test --scenes 250 --segmentation range \
    --out "$WORK/test.npz"
$BIN/pointcam_train --train "$WORK/train.npz" --val "$WORK/val.npz" --test "$WORK/test.npz" \
    --out "$WORK/model.pt" --epochs 18 --mirror --seed 0 --force "$@"
$BIN/pointcam_novelty --model "$WORK/model.pt" --out "$WORK/model_novelty.pt" --force
install -m 644 "$WORK/model_novelty.pt" pointcam_ros/models/default_pointnet.pt
install -m 644 "$WORK/model.json" pointcam_ros/models/default_pointnet.json
echo "installed pointcam_ros/models/default_pointnet.pt ($(du -h pointcam_ros/models/default_pointnet.pt | cut -f1))"
