"""The README's quick start and CI stay in step with what the demo and the tests import."""
import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quickstart_lines():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    block = re.search(r"```shell\n(.*?)```", section, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip()]


def extras_of(install_line):
    return set(re.search(r'-e "\.\[([^\]]*)\]"', install_line).group(1).split(","))


def declared_extras():
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "extras_require":
            return {k.value: [e.value for e in v.elts] for k, v in zip(node.value.keys, node.value.values)}
    raise AssertionError("setup.py has no extras_require")


def test_install_line_names_every_extra_the_demo_and_the_tests_need():
    install, tests = quickstart_lines()
    assert install.endswith("&& sh scripts/demo.sh")
    extras = extras_of(install)
    declared = declared_extras()
    assert extras <= set(declared)
    # the demo draws with matplotlib, the test command runs pytest
    assert any("matplotlib" in req for e in extras for req in declared[e])
    assert tests.startswith("python -m pytest")
    assert any("pytest" in req for e in extras for req in declared[e])
    # the clusterer tests run Infomap (tests/test_clustering_interface.py)
    assert any("infomap" in req for e in extras for req in declared[e])


def test_ci_runs_exactly_the_readme_lines():
    install, tests = quickstart_lines()
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert install.split(" && ")[0] in ci
    assert tests in ci


def test_demo_checks_matplotlib_before_training(tmp_path):
    # matplotlib shadowed by a module that fails to import: demo.sh must stop
    # at once with one line and exit 2, before generating data or training.
    fake = tmp_path / "fake" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONPATH": str(fake.parent),
           "DATA": str(tmp_path / "data"), "LOGS": str(tmp_path / "logs")}
    proc = subprocess.run(["sh", "scripts/demo.sh"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("demo.sh:") and "matplotlib" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists() and not (tmp_path / "logs").exists()


def test_readme_links_and_the_method_page_name_files_of_this_repository():
    readme = (ROOT / "README.md").read_text()
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)]+)\)", readme)]
    local = [t for t in targets if t and not re.match(r"[a-z]+://", t)]
    assert "docs/method.md" in local
    for target in local:
        assert (ROOT / target).exists(), target
        assert (ROOT / target).resolve().is_relative_to(ROOT), target
    assert "../shared" not in readme
    method = (ROOT / "docs" / "method.md").read_text()
    paths = set(re.findall(r"`((?:dualref|examples)/[\w/.]+\.py)`", method))
    assert len(paths) > 15
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, missing
