"""The package's layers (docs/guide/architecture.md): each imports only the layers below it, read from the source."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "brainmri"
# what each layer may import of brainmri besides itself; brainmri.text (the words) and the package root are leaves
ALLOWED = {
    "io": set(),
    "inference": {"io"},
    "data": {"io", "inference"},
    "training": {"io", "inference", "data", "evaluation"},
    "evaluation": {"io", "inference", "data"},
    "ui": {"io", "inference", "data", "evaluation"},
}
LEAVES = {"brainmri", "brainmri.text"}


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module if node.level == 0 else f"<relative>{node.module}")
            found |= {f"{node.module}.{alias.name}" for alias in node.names if node.module == "brainmri"}
    return found


def modules_of(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).glob("*.py"))


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer):
    assert modules_of(layer), f"no modules in brainmri/{layer}"
    for path in modules_of(layer):
        for module in imported_modules(path):
            assert not module.startswith("<relative>"), f"{path.name}: relative import {module}"
            if not module.startswith("brainmri") or module in LEAVES:
                continue
            target = module.split(".")[1]
            if target in {"text", "__version__", "Predictor", "ImageLoadError"}:
                continue
            assert target == layer or target in ALLOWED[layer], f"brainmri/{layer}/{path.name} imports {module}"


def test_nothing_below_the_page_imports_gradio():
    for layer in set(ALLOWED) - {"ui"}:
        for path in modules_of(layer):
            assert not any(m.split(".")[0] in {"gradio", "gradio_client"} for m in imported_modules(path)), path


def test_the_words_and_the_package_root_import_no_layer():
    for path in (PACKAGE / "text.py", PACKAGE / "__init__.py"):
        imports = {m for m in imported_modules(path) if m.startswith("brainmri.")}
        assert (
            imports <= {"brainmri.inference.predictor", "brainmri.io.images"}
            if path.name == "__init__.py"
            else not imports
        ), (path, imports)
