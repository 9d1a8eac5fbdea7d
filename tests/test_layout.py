"""The layout's rules, checked rather than promised: TensorFlow only under app/training, Flask only under app/web and
the factory, and modules small enough to read."""

import ast
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"
WEB_ONLY = ("flask", "werkzeug")


def modules(exclude: tuple[str, ...] = ()) -> list[str]:
    names = []
    for path in sorted(APP.rglob("*.py")):
        parts = path.relative_to(APP.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if parts[-1] != "__main__" and not any(name == e or name.startswith(e + ".") for e in exclude):
            names.append(name)
    return names


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_every_module_outside_training_imports_without_tensorflow():
    names = modules(exclude=("app.training",))
    assert "app.privacy.accountant" in names and "app.jobs.service" in names
    code = (f"import importlib, sys\nfor name in {names!r}:\n    importlib.import_module(name)\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=APP.parent, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_training_package_and_its_data_module_import_without_tensorflow():
    code = "import sys, app.training, app.training.data\nassert 'tensorflow' not in sys.modules\n"
    assert subprocess.run([sys.executable, "-c", code], cwd=APP.parent).returncode == 0


def test_flask_is_imported_only_by_the_web_layer_and_the_factory():
    offenders = [str(path.relative_to(APP.parent)) for path in APP.rglob("*.py")
                 if imported_roots(path) & set(WEB_ONLY)
                 and APP / "web" not in path.parents and path != APP / "__init__.py"]
    assert offenders == []
    code = (f"import importlib, sys\nfor name in {modules(exclude=('app.web',))!r}:\n"
            "    importlib.import_module(name)\nassert 'flask' not in sys.modules, 'flask was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=APP.parent, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr



def test_no_module_is_too_long_to_read():
    long = {str(path.relative_to(APP.parent)): len(path.read_text().splitlines()) for path in APP.rglob("*.py")
            if len(path.read_text().splitlines()) > 600 or path.stat().st_size > 30_000}
    assert long == {}
