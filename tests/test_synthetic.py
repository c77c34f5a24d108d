"""The embedded benchmark's renderer, measurements and simulated crowd."""
import numpy as np
import pytest
from scipy import stats

from relattr_tf.data.synthetic import attributes, crowd, pairs, render
from relattr_tf.data.synthetic.measure import measure


def _rendered(count, size=64, seed=0):
    latents, strengths = [], []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        latent = rng.uniform(0, 1, len(attributes.ATTRIBUTE_NAMES))
        latents.append(latent)
        strengths.append(measure(render.to_uint8(render.render(latent, rng, size))))
    return np.array(latents), np.array(strengths)


@pytest.fixture(scope="module")
def rendered():
    return _rendered(160)


@pytest.mark.parametrize("name", attributes.ATTRIBUTE_NAMES)
def test_measurement_tracks_latent_strength(rendered, name):
    latents, strengths = rendered
    k = attributes.ATTRIBUTE_NAMES.index(name)
    readable = np.isfinite(strengths[:, k])
    assert readable.mean() > 0.75
    rho = stats.spearmanr(latents[readable, k], strengths[readable, k])[0]
    assert rho > 0.9, f"{name}: rank correlation {rho:.3f}"


def test_measurement_at_larger_size_tracks_local_attributes():
    latents, strengths = _rendered(40, size=128, seed=5)
    for name in ("size", "elongation", "stripes"):
        k = attributes.ATTRIBUTE_NAMES.index(name)
        assert stats.spearmanr(latents[:, k], strengths[:, k])[0] > 0.9, name


def test_tilt_is_unreadable_on_round_subjects_and_a_blank_image_has_no_subject():
    latent = np.full(len(attributes.ATTRIBUTE_NAMES), 0.5)
    latent[attributes.ATTRIBUTE_NAMES.index("elongation")] = 0.0
    latent[attributes.ATTRIBUTE_NAMES.index("pointy")] = 0.0
    image = render.render(latent, np.random.default_rng(0), 64)
    assert np.isnan(measure(image)[attributes.ATTRIBUTE_NAMES.index("tilt")])
    blank = measure(np.full((64, 64, 3), 0.5, np.float32))
    local = [attributes.ATTRIBUTE_NAMES.index(a.name) for a in attributes.ATTRIBUTES
             if a.kind == "local"]
    assert np.all(np.isnan(blank[local])) and np.all(np.isfinite(np.delete(blank, local)))


def test_render_is_deterministic_per_seed():
    latent = np.full(len(attributes.ATTRIBUTE_NAMES), 0.3)
    a = render.render(latent, np.random.default_rng([1, 2]), 32)
    b = render.render(latent, np.random.default_rng([1, 2]), 32)
    c = render.render(latent, np.random.default_rng([1, 3]), 32)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_crowd_agreement_falls_and_equal_votes_rise_as_differences_shrink():
    simulated = crowd.Crowd()
    rng = np.random.default_rng(0)
    agreement, equal = {}, {}
    for difference in (1.0, 0.1, 0.04, 0.0):
        labels = [simulated.label(difference, 0.0, 1.0, rng) for _ in range(400)]
        labels = [l for l in labels if l is not None]
        agreement[difference] = np.mean([l["agreement"] for l in labels])
        equal[difference] = np.mean([l["target"] == 0.5 for l in labels])
        if difference >= 0.1:
            ordered = [l for l in labels if l["target"] != 0.5]
            assert np.mean([l["target"] == 1.0 for l in ordered]) > 0.95
    assert agreement[1.0] > agreement[0.1] > agreement[0.04]
    assert equal[0.0] > equal[0.04] > equal[1.0]
    assert agreement[1.0] > 0.9


def test_crowd_marks_unreadable_pairs_illegible_and_confidence_grows_with_difference():
    simulated = crowd.Crowd()
    rng = np.random.default_rng(1)
    assert simulated.label(np.nan, 1.0, 1.0, rng) is None
    far = np.mean([simulated.label(1.0, 0.0, 1.0, rng)["confidence"] for _ in range(100)])
    near = np.mean([simulated.label(0.05, 0.0, 1.0, rng)["confidence"] for _ in range(100)])
    assert far > 0.9 > near


def test_fine_pairs_differ_by_small_amounts_and_coarse_pairs_are_distinct():
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 1, 500)
    fine = pairs.fine_pairs(values, 1.0, 200, rng)
    gaps = np.abs(values[fine[:, 0]] - values[fine[:, 1]])
    assert len(fine) == 200 and gaps.min() >= 0.03 and gaps.max() <= 0.15
    coarse = pairs.coarse_pairs(500, 300, rng)
    assert np.all(coarse[:, 0] != coarse[:, 1])
