"""Every notebook runs top to bottom (small sizes) and is stored without outputs."""

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
TIMEOUT_S = 120  # per cell


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory):
    """A kernelspec running this interpreter (the test venv), whatever kernels the user has installed."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "byai-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "byai test", "language": "python"}))
    mp = pytest.MonkeyPatch()
    mp.setenv("JUPYTER_PATH", str(root))
    mp.setenv("MPLBACKEND", "Agg")
    mp.setenv("JAX_PLATFORMS", "cpu")
    yield "byai-test"
    mp.undo()


def test_notebooks_exist():
    assert {"quickstart.ipynb", "solver_verification.ipynb", "hybrid_stepping.ipynb", "python_api.ipynb"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stored_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: clear the outputs"


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes(name, kernel_name, tmp_path):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(nb, timeout=TIMEOUT_S, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the failing cell
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
