"""The notebooks, executed top to bottom on the smoke configs (papermill sets the cell tagged
`parameters`), so that none can rot: each must run without error and show its pictures."""
import os
import shutil

import nbformat
import papermill
import pytest

from tests.cli import ROOT
from tests.conftest import smoke_generator_args


def execute(name, tmp_path, **parameters):
    """Runs notebooks/<name>.ipynb from the repository root; returns the executed notebook."""
    out = str(tmp_path / f"{name}.ipynb")
    papermill.execute_notebook(os.path.join(ROOT, "notebooks", f"{name}.ipynb"), out,
                               parameters=parameters, cwd=ROOT, kernel_name="python3",
                               progress_bar=False, log_output=False, execution_timeout=600)
    return nbformat.read(out, as_version=4)


def outputs(notebook):
    """(all text the cells printed, how many PNG images they displayed)."""
    text, images = [], 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            text.append(output.get("text", ""))
            data = output.get("data", {})
            text.append(data.get("text/plain", ""))
            images += "image/png" in data
    return "".join(text), images


@pytest.fixture(scope="module")
def attention_run(tiny_data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("attention_notebook")
    args = ["--flagfile=configs/smoke.flags", f"--data_dir={tiny_data_dir}", "--attribute=tilt"]
    notebook = execute("dacrl_attention", root, workdir=str(root / "attention"),
                       train_args=args)
    return notebook, args, root / "attention" / "dacrl"


def test_dacrl_attention_notebook(attention_run):
    text, images = outputs(attention_run[0])
    assert "dacrl_noatt  tilt / test: accuracy" in text and "attention: " in text
    assert text.count("saliency: ") == 2 and images == 2


def test_quickstart_notebook(attention_run, tmp_path):
    _, args, dacrl_dir = attention_run  # the same run: reused, not trained again
    notebook = execute("quickstart", tmp_path, train_args=args + [f"--model_dir={dacrl_dir}"])
    text, images = outputs(notebook)
    assert "tilt / test: accuracy" in text and "saliency: " in text
    assert "p(a shows more):" in text and "epoch 1/" not in text
    assert images == 2  # the test pairs (matplotlib) and the saliency sheet
    assert os.path.exists(dacrl_dir / "visualize" / "saliency.png")


@pytest.mark.slow  # a minute; the default run has the same one-round loop in test_attic_experiment
def test_attic_notebook(tiny_data_dir, smoke_generator, tmp_path):
    data_dir = str(shutil.copytree(tiny_data_dir, tmp_path / "data"))  # rounds append pairs
    generator_dir, _ = smoke_generator  # the notebook finds it finished and reuses it
    notebook = execute(
        "attic_active_loop", tmp_path, rounds=1,
        generator_args=smoke_generator_args(tiny_data_dir, generator_dir),
        attic_args=["--flagfile=configs/attic_smoke.flags", f"--data_dir={data_dir}",
                    f"--model_dir={tmp_path / 'attic'}", "--warm_start=",
                    f"--generator_dir={os.path.join(generator_dir, 'generator')}",
                    "--attribute=brightness", "--real_pairs=16", "--val_steps=1",
                    "--eval_split=test"])
    text, images = outputs(notebook)
    assert "sweep: brightness Spearman" in text and "generated pairs accepted" in text
    assert "labelling package of round 1: 16 pairs" in text and images == 2
    assert os.path.exists(tmp_path / "attic" / "visualize" / "pairs.png")


@pytest.mark.parametrize("name", ["quickstart", "dacrl_attention", "attic_active_loop"])
def test_notebooks_are_stored_without_outputs(name):
    notebook = nbformat.read(os.path.join(ROOT, "notebooks", f"{name}.ipynb"), as_version=4)
    nbformat.validate(notebook)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    assert sum("parameters" in cell.metadata.get("tags", []) for cell in notebook.cells) == 1
