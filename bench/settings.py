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
"""``--set PARAM=VALUE ...``: pipeline parameters changed from a benchmark's command line."""

import argparse

from pointcam_ros.common.config import ConfigError, PipelineConfig
import yaml


def add_set_option(parser: argparse.ArgumentParser, example: str) -> None:
    """Add ``--set PARAM=VALUE ...`` to ``parser`` (``example``: shown in the help)."""
    parser.add_argument('--set', nargs='*', default=[], metavar='PARAM=VALUE',
                        help=f'pipeline parameters to change, e.g. {example}')


def config_from_set(parser: argparse.ArgumentParser, args: argparse.Namespace,
                    **base) -> PipelineConfig:
    """Return ``PipelineConfig(**base)`` with ``args.set`` applied; a bad one is a usage error."""
    changes = dict(base)
    for item in args.set:
        name, _, value = item.partition('=')
        changes[name] = yaml.safe_load(value)
    try:
        return PipelineConfig.from_dict(changes)
    except ConfigError as exc:
        parser.error(f'--set: {exc}')
