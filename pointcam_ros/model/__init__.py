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
The model families, their checkpoints and the preprocessing of objects (torch).

``build_model`` (:mod:`~pointcam_ros.model.registry`) builds PointNet, DGCNN
or PointNet++ by name; it is imported on first use, so importing this package
does not import torch.
"""


def __getattr__(name: str):
    """Import ``build_model`` and ``FAMILIES`` from the registry on first use."""
    if name in ('build_model', 'FAMILIES'):
        from pointcam_ros.model import registry
        return getattr(registry, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
