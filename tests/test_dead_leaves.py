"""The synthetic dead-leaves stills (training/dead_leaves.py) and their place in the training data."""
from __future__ import annotations

import numpy as np

from training.data import WindowDataset
from training.dead_leaves import MIN_RADIUS, dead_leaves, leaf_radii
from training.model_card import synthetic_stills


def test_radii_follow_the_scale_invariant_law_within_their_bounds():
    radii = leaf_radii(200_000, 64.0, np.random.default_rng(0))
    assert radii.min() >= MIN_RADIUS and radii.max() <= 64.0
    # density r^-3: the share of radii in [r, 2r] falls by 4x per octave (far from the upper bound)
    octaves = [np.mean((radii >= r) & (radii < 2 * r)) for r in (1.5, 3, 6)]
    assert np.allclose(np.array(octaves[:-1]) / np.array(octaves[1:]), 4, rtol=0.1), octaves


def test_images_are_seeded_and_varied():
    first, again = dead_leaves(96, np.random.default_rng(3)), dead_leaves(96, np.random.default_rng(3))
    other = dead_leaves(96, np.random.default_rng(4))
    assert first.shape == (96, 96, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert first.std() > 30  # shapes of many grey levels, not one flat fill
    # edges at every scale: many neighbours differ, but most of the image is not an edge
    steps = np.abs(np.diff(first.astype(int), axis=1)).max(axis=2)
    assert 0.1 < np.mean(steps >= 8) < 0.9


def test_the_training_stream_draws_dead_leaves_only_when_asked():
    rng_seed = [7, 0, 0]
    plain = WindowDataset("denoise", 3, 48, still_prob=1.0).sample(np.random.default_rng(rng_seed))
    synthetic = WindowDataset("denoise", 3, 48, still_prob=1.0, synthetic_prob=1.0).sample(np.random.default_rng(rng_seed))
    zero = WindowDataset("denoise", 3, 48, still_prob=1.0, synthetic_prob=0.0).sample(np.random.default_rng(rng_seed))
    assert synthetic[0].shape == plain[0].shape == (3, 3, 48, 48) and synthetic[1].shape == (3, 48, 48)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(plain, zero))  # the default stream is unchanged
    assert not np.array_equal(plain[1].numpy(), synthetic[1].numpy())


def test_the_model_card_says_when_dead_leaves_were_drawn():
    assert synthetic_stills({"task": "denoise"}) == ""
    assert "25% of still windows synthetic dead-leaves" in synthetic_stills({"synthetic_prob": 0.25})
