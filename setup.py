from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
requirements = [line.strip() for line in (here / "requirements.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#") and not line.startswith("pytest")]

setup(
    name="fastreid_ms",
    version="0.1.0",
    description="FastReID person re-identification on MindSpore, with the ACL-DGReID dynamic-router ResNet (DR50)",
    long_description=(here / "README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["fastreid_ms", "fastreid_ms.*"]),
    python_requires=">=3.9",
    install_requires=requirements,
    extras_require={"test": ["pytest"]},
)
