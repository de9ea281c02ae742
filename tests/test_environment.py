"""environment.yml must list the same packages and bounds as pyproject.toml."""

import re
import tomllib

import yaml

from conftest import REPO_ROOT

# PyPI names whose conda-forge package is named differently.
CONDA_NAMES = {"torch": "pytorch-cpu"}
# Extras a student needs to run every chapter; "test" is for developers only.
STUDENT_EXTRAS = ("book", "geo", "lora")


def _split(requirement: str) -> tuple[str, str]:
    match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", requirement.strip())
    assert match, f"cannot parse requirement {requirement!r}"
    return match.group(1).lower(), match.group(2).replace(" ", "")


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    requirements = list(project["dependencies"])
    for extra in STUDENT_EXTRAS:
        requirements += extras[extra]
    return dict(_split(requirement) for requirement in requirements)


def _pip_section() -> list[str]:
    environment = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    sections = [item["pip"] for item in environment["dependencies"] if isinstance(item, dict)]
    assert len(sections) == 1, "environment.yml needs exactly one pip section"
    return sections[0]


def _conda_requirements() -> dict[str, str]:
    """Return conda and pip requirements of environment.yml, without the package itself."""
    environment = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    specs = [item for item in environment["dependencies"] if isinstance(item, str)]
    specs += [item for item in _pip_section() if not item.startswith("-e")]
    return dict(_split(spec) for spec in specs)


def test_environment_lists_every_dependency():
    conda = _conda_requirements()
    for name, bound in _pyproject_requirements().items():
        conda_name = CONDA_NAMES.get(name, name)
        assert conda_name in conda, f"{conda_name} missing from environment.yml"
        assert conda[conda_name] == bound, f"{conda_name}: {conda[conda_name]} != {bound}"


def test_environment_installs_package_from_checkout():
    assert _pip_section()[-1] == "-e ."


def test_environment_uses_cpu_pytorch():
    conda = _conda_requirements()
    assert "pytorch-cpu" in conda
    assert "pytorch" not in conda
