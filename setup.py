from pathlib import Path
import re

from setuptools import find_packages, setup

here = Path(__file__).parent
version = re.search(r'__version__ = "([^"]+)"',
                    (here / "treeinf" / "__init__.py").read_text()).group(1)

trees = ["lightgbm>=4.0", "xgboost>=2.0", "catboost>=1.2"]

setup(
    name="treeinf",
    version=version,
    description="Which training rows made a tree model predict what it predicts: "
                "fast, exact influence estimation for gradient-boosted trees and forests.",
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["treeinf", "treeinf.*"]),
    # py.typed: the public API carries type hints (PEP 561)
    package_data={"treeinf": ["_data/manifest.json", "py.typed"]},
    license_files=["LICENSE"],
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.24",
        "numba>=0.59",
        "scipy>=1.10",
        "scikit-learn>=1.6",  # __sklearn_tags__, _check_sample_weight(ensure_non_negative)
        "joblib>=1.3",
        "pandas>=2.0",
        "tqdm>=4.0",
        "threadpoolctl>=3.1",
    ],
    extras_require={
        "lightgbm": ["lightgbm>=4.0"],
        "xgboost": ["xgboost>=2.0"],
        "catboost": ["catboost>=1.2"],
        "trees": trees,
        "plot": ["matplotlib>=3.5"],
        "dask": ["dask[distributed]>=2023.1"],
        "parquet": ["pyarrow>=12"],
        "docs": ["sphinx>=7.0", "numpydoc>=1.6", "myst-parser>=2.0"],
        "test": trees + ["pytest>=7", "matplotlib>=3.5", "dask[distributed]>=2023.1",
                         "pyarrow>=12", "sphinx>=7.0", "numpydoc>=1.6", "myst-parser>=2.0"],
        "bench": trees + ["psutil", "matplotlib>=3.5", "dask[distributed]>=2023.1"],
    },
    entry_points={"console_scripts": ["treeinf=treeinf.cli:main"]},
    license="MIT",
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: MIT License",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
