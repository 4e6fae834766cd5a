"""Installation script for dualref (Dual-Refinement for UDA person re-ID)."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def read_requirements() -> list:
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="dualref",
    version="0.1.0",
    description="Dual-Refinement: joint label and feature refinement for "
    "unsupervised domain adaptive person re-identification",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["dualref", "dualref.*"]),
    install_requires=read_requirements(),
    extras_require={"test": ["pytest>=7", "infomap>=2.0"], "plots": ["matplotlib>=3.5"],
                    "infomap": ["infomap>=2.0"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
