"""pyproject.toml states ranges; constraints.txt the exact versions tested (make setup, CI and the
cluster files install with -c constraints.txt). Every pin must lie inside its range, or the
tested set could not be installed as declared."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def declared() -> list[tuple[str, Requirement]]:
    """(where, requirement) for every dependency and every extra's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [("dependencies", Requirement(text)) for text in project["dependencies"]]
    for extra, texts in project.get("optional-dependencies", {}).items():
        found += [(f"optional-dependencies.{extra}", Requirement(text)) for text in texts]
    return found


def pins() -> dict[str, Version]:
    versions = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, separator, version = line.partition("==")
        assert separator, f"constraints.txt: {line!r} is not an exact pin (name==version)"
        versions[canonicalize_name(name)] = Version(version)
    return versions


def test_pyproject_states_ranges_not_pins():
    pinned = [f"{where}: {req}" for where, req in declared() if any(s.operator in ("==", "===") for s in req.specifier)]
    assert not pinned, f"exact pins belong in constraints.txt: {pinned}"


@pytest.mark.parametrize("where, requirement", declared(), ids=lambda value: str(value))
def test_every_direct_dependency_is_pinned_inside_its_range(where, requirement):
    version = pins().get(canonicalize_name(requirement.name))
    assert version is not None, f"{where}: {requirement.name} has no pin in constraints.txt"
    assert requirement.specifier.contains(version, prereleases=True), (
        f"constraints.txt pins {requirement.name}=={version}, outside pyproject's {where} range {requirement}"
    )


def test_setup_ci_and_cluster_files_install_with_the_constraints():
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()
    assert "make test" in (ROOT / ".ci/run").read_text()  # make test runs make setup first
    for cluster_file in ("cluster.yaml", "cluster-local.yaml"):
        assert "-c ~/gensweep/constraints.txt" in (ROOT / cluster_file).read_text(), cluster_file
