"""The Binder environment (binder/requirements.txt) is satisfiable with what CI has
installed, without network access, and every notebook the README links to exists."""

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from urllib.parse import urlparse

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
REGISTRY_HOSTS = {"pypi.org", "files.pythonhosted.org", "download.pytorch.org"}


def binder_lines() -> list[str]:
    lines = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    return [ln.split("#")[0].strip() for ln in lines if ln.split("#")[0].strip()]


def installed(name: str) -> Version:
    try:
        return Version(Version(version(name)).base_version)  # 2.13.0+cpu -> 2.13.0
    except PackageNotFoundError:
        pytest.fail(f"{name} is required by the Binder environment but not installed")


def assert_satisfied(req: Requirement) -> None:
    if req.marker is not None and not req.marker.evaluate():
        return
    have = installed(req.name)
    assert req.specifier.contains(have, prereleases=True), f"{req.name} {have} does not satisfy {req}"


def test_binder_requirements_pin_cpu_torch_and_install_the_package():
    lines = binder_lines()
    options = [ln for ln in lines if ln.startswith("-")]
    for opt in options:
        flag, _, url = opt.partition(" ")
        assert flag in ("--extra-index-url", "--index-url"), f"unexpected pip option {opt!r}"
        assert urlparse(url.strip()).hostname in REGISTRY_HOSTS, f"{url} is not a package registry"
    assert any("download.pytorch.org/whl/cpu" in opt for opt in options), "Binder must get the CPU torch wheel"
    reqs = [ln for ln in lines if not ln.startswith("-")]
    assert "." in reqs or "-e ." in lines, "binder/requirements.txt must install this package ('.')"
    torch_req = [Requirement(r) for r in reqs if r != "." and Requirement(r).name == "torch"]
    assert torch_req and str(torch_req[0].specifier) == "==2.13.0"


def test_every_binder_requirement_is_satisfied_here():
    for line in binder_lines():
        if line.startswith("-") or line == ".":
            continue
        assert_satisfied(Requirement(line))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"]:
        assert_satisfied(Requirement(dep))


def test_postbuild_is_an_executable_script():
    post = ROOT / "binder" / "postBuild"
    if post.exists():
        assert post.stat().st_mode & 0o111, "binder/postBuild must be executable"
        assert post.read_text().startswith("#!"), "binder/postBuild needs a shebang line"


def test_every_notebook_named_in_the_readme_exists():
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"notebooks/[\w\-.]+\.ipynb", readme))
    assert named, "README.md names no notebooks/*.ipynb (add the Binder/Voila section)"
    missing = sorted(n for n in named if not (ROOT / n).exists())
    assert not missing, f"README.md links to missing notebooks: {missing}"


def test_binder_lands_on_the_prepared_teaching_app():
    assert "landscape-widgets prepare" in (ROOT / "binder" / "postBuild").read_text()
    readme = (ROOT / "README.md").read_text()
    badge = re.search(r"\(https://mybinder\.org/v2/gh/[^)\s]+\)", readme)
    assert badge and "urlpath=voila/render/notebooks/explorer_app.ipynb" in badge.group(0)
