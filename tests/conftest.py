"""Shared fixtures: a tiny embedded-benchmark data directory, built once per test session."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

TINY_ARGS = ["--num_images=90", "--pairs_per_attribute=40", "--test_pairs_per_attribute=24",
             "--image_size=32", "--attributes=brightness,tilt", "--num_shards=2", "--seed=3"]


def make_tiny(output_dir, *extra):
    from beam_jobs import make_synthetic
    make_synthetic.run([f"--output_dir={output_dir}", *TINY_ARGS, *extra])
    return str(output_dir)


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
    """Brightness and tilt at 32 px: ~60 train / 20 test images, 40 train pairs per pair set."""
    return make_tiny(tmp_path_factory.mktemp("tiny_synthetic"))


@pytest.fixture(scope="session")
def smoke_model(tiny_data_dir, tmp_path_factory):
    """One smoke DACRL trained by the command on the tiny benchmark, for the tests that only
    read what training leaves: (model_dir, its stdout)."""
    from tests.cli import run_module, smoke_args
    model_dir = str(tmp_path_factory.mktemp("smoke_model"))
    # 23 steps: epochs end off TensorBoard's update frequency (8), where summaries got lost.
    proc = run_module("relattr_tf.train", *smoke_args(tiny_data_dir, model_dir,
                                                      "--steps_per_epoch=23", "--update_freq=8"))
    return model_dir, proc.stdout


def smoke_generator_args(data_dir, model_dir, *extra):
    return ["--flagfile=configs/cvae_smoke.flags", f"--data_dir={data_dir}",
            f"--model_dir={model_dir}", "--validation_fraction=0.3", *extra]


@pytest.fixture(scope="session")
def smoke_generator(tiny_data_dir, tmp_path_factory):
    """One smoke Attribute2Image trained by the command on the tiny benchmark, for the tests
    that only read its model_dir and generator artifact: (model_dir, its stdout)."""
    from tests.cli import run_module
    model_dir = str(tmp_path_factory.mktemp("smoke_generator"))
    proc = run_module("relattr_tf.train", *smoke_generator_args(tiny_data_dir, model_dir))
    return model_dir, proc.stdout


@pytest.fixture(scope="session")
def oracle_generator(tmp_path_factory):
    """The oracle generator built by its command at 32 px, small: (model_dir, its stdout)."""
    from tests.cli import run_module
    root = tmp_path_factory.mktemp("oracle_generator")
    model_dir = str(root / "oracle")
    proc = run_module("relattr_tf.oracle_generator", "--flagfile=configs/oracle_synth.flags",
                      f"--model_dir={model_dir}", "--image_size=32",
                      "--calibration_images=300", "--sweep_samples=2", "--eval_pairs=40",
                      f"--results_dir={root / 'results'}")
    return model_dir, proc.stdout


@pytest.fixture(scope="session", autouse=True)
def the_committed_ledgers_stay_untouched():
    """Tests write their ledgers under tmp_path (--results_dir), never into results/."""
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results")
    listing = lambda: sorted(os.path.relpath(os.path.join(d, n), root)
                             for d, _, names in os.walk(root) for n in names)
    before = listing()
    yield
    assert listing() == before, "a test wrote into results/: pass --results_dir=<tmp>"
