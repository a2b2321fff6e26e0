# Copyright 2026 pointcam_ros maintainers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
The model on each real road user's own points: the classifier's share of the misses.

``bench/real_check.py`` runs the whole pipeline, so a road user it gets
wrong may have been cut badly or named badly. Here every labelled road user
of the real development scans (``../shared/realdata``, as
``real_check.py`` reads them) is classified on its own points only: those
its label holds that are in the region of interest and not ground, with
their heights above the ground from the pipeline's segmentation, sampled,
normalised and calibrated as the pipeline does. What is still wrong here
is the classifier's; the rest of ``real_check.py``'s misses are the
segmentation's. Prints each wrong one and, per set, how many are right
(the class, with at least ``min_confidence``).

    .venv/bin/python bench/real_crops.py ../shared/realdata [--model M.pt]
"""

import argparse
from dataclasses import dataclass
from pathlib import Path
import sys
from typing import Optional, Sequence

import numpy as np
from pointcam_ros.common.config import PipelineConfig
from pointcam_ros.formats.kitti import list_frames, read_frame
from pointcam_ros.learn.kitti import analyse_frame
from pointcam_ros.perception.pipeline import ScenePipeline
from pointcam_ros.perception.segmentation import region_of_interest, segment_scene
from pointcam_ros.perception.split import explain_with
from pointcam_ros.perception.stages import Segments

sys.path.insert(0, str(Path(__file__).parent))
import realdata  # noqa: E402  (bench/realdata.py)


@dataclass
class Crop:
    """One labelled road user: ``xyz`` (n, 3) float32 and ``height`` (n,) float32 above ground."""

    set_name: str
    scan: str
    name: str
    distance: float
    xyz: np.ndarray
    height: np.ndarray


def labelled_road_users(root: Path, config: PipelineConfig, min_points: int = 30
                        ) -> list[Crop]:
    """Return the road users of ≥ ``min_points`` visible points of the real-data folder."""
    crops: list[Crop] = []
    kitti = root / 'kitti'
    if (kitti / 'velodyne').is_dir():
        for frame in list_frames(kitti):
            analysis = analyse_frame(read_frame(kitti, frame), config)
            for box in analysis.boxes:
                mask = box.mask & analysis.visible
                if mask.sum() >= min_points:
                    crops.append(Crop('kitti', frame, box.label.class_name,
                                      float(np.hypot(*box.box.center[:2])),
                                      analysis.xyz[mask], analysis.height[mask]))
    sets = [realdata.semantic_kitti(root)]
    if (root / 'av2').is_dir():
        sets.append(realdata.argoverse(root))  # needs pyarrow
    for scan in (scan for scans in sets for scan in scans):
        segmentation = segment_scene(scan.xyz, config)
        visible = region_of_interest(scan.xyz, config) & ~segmentation.ground
        for obj in scan.objects:
            mask = obj.mask & visible
            if mask.sum() >= min_points:
                crops.append(Crop(scan.set_name, scan.name, obj.name, obj.distance(scan.xyz),
                                  scan.xyz[mask], segmentation.height[mask]))
    return crops


def classify(pipeline: ScenePipeline, crops: Sequence[tuple[np.ndarray, np.ndarray]]
             ) -> tuple[list[str], np.ndarray]:
    """
    Return the class name and calibrated confidence ``(K,)`` of each ``(xyz, height)`` crop.

    One batch through the pipeline's own sample, explain and map-back stages.
    """
    if not crops:
        return [], np.zeros(0)
    xyz = np.concatenate([c[0] for c in crops]).astype(np.float32)
    height = np.concatenate([c[1] for c in crops]).astype(np.float32)
    labels = np.concatenate([np.full(len(c[0]), k, np.int32) for k, c in enumerate(crops)])
    batch = explain_with(pipeline._stages)(Segments(xyz, labels, len(crops), height))
    names = [pipeline.class_names[int(k)] for k in batch.predicted]
    return names, batch.probs[np.arange(len(crops)), batch.predicted]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Classify every labelled road user on its own points; print the wrong ones and counts."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('dir', type=Path, help='the real-data folder (../shared/realdata)')
    parser.add_argument('--model', default='', help="checkpoint ('' = the shipped model)")
    args = parser.parse_args(argv)
    pipeline = ScenePipeline(PipelineConfig(device='cpu', model_path=args.model))
    crops = labelled_road_users(args.dir, pipeline.config)
    names, confidence = classify(pipeline, [(c.xyz, c.height) for c in crops])
    tally: dict[str, list[int]] = {}
    for crop, name, conf in zip(crops, names, confidence):
        right = name == crop.name and conf >= pipeline.config.min_confidence
        counts = tally.setdefault(crop.set_name, [0, 0])
        counts[0] += right
        counts[1] += 1
        if not right:
            print(f'{crop.set_name} {crop.scan}: {crop.name} of {len(crop.xyz)} points at '
                  f'{crop.distance:.1f} m shown as {name} {conf:.2f}')
    for set_name, (right, total) in tally.items():
        print(f'{set_name}: {right}/{total} road users right on their own points')
    print(f'all: {sum(r for r, _ in tally.values())}/{len(crops)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
