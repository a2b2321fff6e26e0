"""Install pointcam_ros with colcon (ament_python) or pip."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'pointcam_ros'

setup(
    name=PACKAGE,
    version='0.2.0',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={PACKAGE: ['models/*.pt', 'models/*.json', 'resources/*.xml']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.launch.py')),
        (f'share/{PACKAGE}/config', glob('config/*')),
    ],
    python_requires='>=3.10',
    # Only what rosdep provides on ROS machines, and rosbags, which has no rosdep key: the
    # README's ROS steps pip-install it (Humble's console scripts check these and refuse to
    # start without them). torch is installed separately (see README); pointcloud2 (the
    # PyPI port of sensor_msgs_py, needed only without ROS) comes from requirements.txt.
    # open3d only for the simulator (pointcam_sim, pointcam_demo, pointcam_dataset):
    # pointcam_node, pointcam_bag and ScenePipeline run without it.
    install_requires=['setuptools', 'numpy', 'scipy', 'pyyaml', 'tqdm', 'matplotlib',
                      'rosbags'],
    # pip install 'pointcam_ros[sim]' for the simulator; 'pointcam_ros[fleet]' for
    # pointcam_bag --ray (explain many bags on a Ray cluster).
    extras_require={'sim': ['open3d'], 'fleet': ['ray']},
    zip_safe=False,
    maintainer='pointcam_ros maintainers',
    maintainer_email='maintainers@pointcam-ros.org',
    description='Live Grad-CAM saliency for a PointNet LiDAR classifier in ROS 2.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'pointcam_node = pointcam_ros.ros.entry:node',
            'pointcam_sim = pointcam_ros.ros.entry:sim',
            'pointcam_train = pointcam_ros.learn.train:main',
            'pointcam_dataset = pointcam_ros.learn.dataset_cli:main',
            'pointcam_eval = pointcam_ros.learn.evaluate:main',
            'pointcam_novelty = pointcam_ros.learn.novelty:main',
            'pointcam_demo = pointcam_ros.ros.entry:demo',
            'pointcam_bag = pointcam_ros.tools.bag_cli:main',
        ],
    },
)
