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


@pytest.fixture(scope="session", autouse=True)
def the_committed_ledgers_stay_untouched():
    """Tests write their ledgers under tmp_path (--results_dir), never into results/."""
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results")
    listing = lambda: sorted(os.path.relpath(os.path.join(d, n), root)
                             for d, _, names in os.walk(root) for n in names)
    before = listing()
    yield
    assert listing() == before, "a test wrote into results/: pass --results_dir=<tmp>"
