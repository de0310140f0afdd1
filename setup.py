"""tb_cnnviz: see what a PyTorch CNN learns, in TensorBoard's CNNVIZ tab, while it learns."""

from setuptools import find_packages, setup

setup(
    name="tb_cnnviz",
    version="0.1.0",
    description="A TensorBoard plugin and PyTorch logging library for visualising convolutional networks",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["tb_cnnviz", "tb_cnnviz.*"]) + ["tb_cnnviz.frontend"],
    # The top-level frontend/ is the tab's source; in the wheel it lives inside the package so that the
    # plugin can serve it wherever the package is installed.
    package_dir={"tb_cnnviz.frontend": "frontend"},
    package_data={"tb_cnnviz": ["http_api.md"], "tb_cnnviz.frontend": ["*.js", "*.css", "views/*.js", "views/*.css"]},
    install_requires=[
        "tensorboard>=2.12",
        "torch>=2.1",  # any newer release too: the machine's local 2.14.1 CUDA build is fine
        "torchvision>=0.16",
        "numpy>=1.22",
        "pillow>=9",
        "scikit-learn>=1.1",
        "werkzeug>=2",
        "tqdm>=4.60",  # the progress bar of long attributions (occlusion), as Captum and torchvision users know it
        "openTSNE>=1.0",  # FFT-accelerated t-SNE: lays out 10,000 CNN codes faster than scikit-learn's TSNE
        "google-crc32c>=1.5",  # event-file checksums in C: TensorBoard's pure-Python CRC costs 120 ns per byte
    ],
    extras_require={
        "test": ["pytest>=7", "playwright>=1.40", "captum>=0.7", "build", "wheel", "moto[server]>=5", "boto3",
                 "timm>=0.9", "lightning>=2.0"],
        "s3": ["boto3"],  # s3:// log directories, through TensorBoard's own S3 file system
        "lightning": ["lightning>=2.0"],
    },
    entry_points={
        "tensorboard_plugins": ["cnnviz = tb_cnnviz.plugin:CNNVizLoader"],
        "console_scripts": ["tb-cnnviz = tb_cnnviz.cli:main"],
    },
)
