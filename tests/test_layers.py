"""The layers: entry points -> recommend/serve -> models -> data -> metrics/utils; inference never borrows from
training's DataModules or from another command."""
import ast
from pathlib import Path

import pytest

MRI = Path(__file__).resolve().parents[1] / "mri"
COMMANDS = {"mri.train", "mri.eval", "mri.caption", "mri.preprocess", "mri.recommend.command", "mri.serve.command"}


def imported(path: Path) -> set[str]:
    """The mri modules a file imports (from x import y counts as x)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return {n for n in names if n.startswith("mri.")}


@pytest.mark.parametrize("package", ["recommend", "serve", "models"])
def test_inference_imports_no_datamodule_and_no_command(package):
    for path in sorted((MRI / package).glob("*.py")):
        bad = {n for n in imported(path) if n.endswith("_datamodule") or n in COMMANDS}
        assert not bad, f"{path.relative_to(MRI.parent)} imports {sorted(bad)}"
