"""minidl: install with ``pip install -e .`` (tests: ``pip install -e .[test]``).

``models/`` is installed as ``minidl.models`` through package_dir, so no
top-level ``models`` package lands in site-packages.
"""
from setuptools import setup

setup(
    name="minidl",
    version="0.1.0",
    description="A small deep-learning framework: autograd over NumPy/CuPy, own CUDA kernels, classic ImageNet models",
    python_requires=">=3.10",
    packages=["minidl", "minidl.autograd", "minidl.backend", "minidl.backend.cpu",
              "minidl.nn", "minidl.optim", "minidl.models"],
    package_dir={"minidl.models": "models"},
    install_requires=["numpy>=1.24", "numba>=0.59"],
    extras_require={
        "test": ["pytest>=7", "pytest-timeout>=2"],
        "bench": ["threadpoolctl>=3"],
    },
)
