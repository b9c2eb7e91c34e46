"""pyproject.toml and the lock files agree with the code.

Every third-party package that domain/, contracts/ or services/ imports is a runtime
dependency, and every runtime dependency is imported there (the test tools live in the
`dev` extra). requirements.lock pins the runtime set with hashes, requirements-dev.lock
adds the dev extra with the same pins for every package they share (`make lock`).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = [Requirement(line) for line in PROJECT["dependencies"]]
DEV = [Requirement(line) for line in PROJECT["optional-dependencies"]["dev"]]
OUR_PACKAGES = {"domain", "contracts", "services"}
PIN = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)((?:\s*\\\n\s*--hash=sha256:[0-9a-f]{64})*)", re.M
)


def imported_top_level_modules(*folders: str) -> set[str]:
    modules: set[str] = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    modules.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules.add(node.module.split(".")[0])
    return modules - OUR_PACKAGES - set(sys.stdlib_module_names) - {"_typeshed"}


def runtime_imports() -> dict[str, str]:
    """Each third-party distribution our runtime code imports, by one module it imports."""
    distributions = packages_distributions()
    found: dict[str, str] = {}
    for module in imported_top_level_modules("domain", "contracts", "services"):
        assert module in distributions, f"{module} is imported but not installed"
        for distribution in distributions[module]:
            found[canonicalize_name(distribution)] = module
    return found


def pins(lock: str) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) for every package pinned in a lock file."""
    text = (ROOT / lock).read_text()
    return {
        canonicalize_name(name): (version, hashes.count("--hash="))
        for name, version, hashes in PIN.findall(text)
    }


def test_every_package_the_runtime_code_imports_is_a_runtime_dependency():
    declared = {canonicalize_name(requirement.name) for requirement in RUNTIME}
    missing = {name: module for name, module in runtime_imports().items() if name not in declared}
    assert not missing, f"imported by the runtime code, not in [project] dependencies: {missing}"


def test_every_runtime_dependency_is_imported_by_the_runtime_code():
    imported = set(runtime_imports())
    unused = {requirement.name for requirement in RUNTIME} - imported
    assert not unused, (
        f"runtime dependencies nothing in domain/contracts/services imports: {unused}"
    )


def test_the_test_tools_are_not_runtime_dependencies():
    runtime = {canonicalize_name(requirement.name) for requirement in RUNTIME}
    for tool in ("pytest", "playwright", "schemathesis", "hypothesis", "mypy", "ruff", "pika"):
        assert tool not in runtime
        assert tool in {canonicalize_name(requirement.name) for requirement in DEV}


def test_the_runtime_lock_pins_every_runtime_dependency_with_hashes():
    locked = pins("requirements.lock")
    for requirement in RUNTIME:
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is not in requirements.lock: run `make lock`"
        version, _ = locked[name]
        assert requirement.specifier.contains(version, prereleases=True), (name, version)
    assert all(hashes for _, hashes in locked.values())
    assert "pytest" not in locked and "playwright" not in locked


def test_the_dev_lock_adds_the_dev_extra_with_the_runtime_locks_pins():
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    differing = {
        name: (pin, dev.get(name)) for name, pin in runtime.items() if dev.get(name) != pin
    }
    assert not differing, f"the two locks disagree (run `make lock`): {differing}"
    for requirement in DEV:
        name = canonicalize_name(requirement.name)
        assert name in dev, f"{name} is not in requirements-dev.lock: run `make lock`"
        assert requirement.specifier.contains(dev[name][0], prereleases=True), (name, dev[name])
    assert all(hashes for _, hashes in dev.values())
