"""The package's layers (docs/design.md, "Layout"): a layer imports only from the layers above it, and the
layers that describe processes, messages and results files load no torch."""

import ast
import subprocess
import sys

from conftest import ROOT

LAYERS = ["net", "training", "costs", "privacy", "methods", "reports"]  # each may import from those before it


def imported_layers(path):
    """The layers of splitlab that the module at ``path`` imports from."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        for name in names:
            parts = name.split(".")
            if parts[0] == "splitlab" and len(parts) > 1 and parts[1] in LAYERS:
                found.add(parts[1])
            elif name == "splitlab" and isinstance(node, ast.ImportFrom):
                found |= {a.name for a in node.names if a.name in LAYERS}
    return found


def test_a_layer_imports_only_from_the_layers_above_it():
    upward = {}
    for rank, layer in enumerate(LAYERS):
        for path in sorted((ROOT / "splitlab" / layer).glob("*.py")):
            above = {name for name in imported_layers(path) if LAYERS.index(name) > rank}
            if above:
                upward[str(path.relative_to(ROOT))] = sorted(above)
    assert upward == {}


def test_the_layers_check_sees_an_upward_import(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("from splitlab.methods import averaging\nfrom splitlab import costs\n")
    assert imported_layers(planted) == {"methods", "costs"}


def test_messages_placement_and_results_files_load_no_torch():
    modules = ["splitlab.net.link", "splitlab.net.placement", "splitlab.net.protocol", "splitlab.net.process_policy",
               "splitlab.net.messaging", "splitlab.runs", "splitlab.errors"]
    code = f"import sys\nfor m in {modules!r}:\n    __import__(m)\nprint('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
