"""Off-policy estimators on logged data whose target-policy value is known exactly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from cartrecover.learn.ope import Estimate, direct, doubly_robust, ips, snips

CONTEXTS, ACTIONS = 5, 4


@dataclass(frozen=True)
class World:
    """Click probabilities per (context, action), a logging and a target policy, and the target's true value."""

    click: np.ndarray
    logging: np.ndarray
    target: np.ndarray
    context_share: np.ndarray

    @property
    def value(self) -> float:
        return float(self.context_share @ (self.target * self.click).sum(axis=1))


@dataclass(frozen=True)
class Log:
    reward: np.ndarray
    mu: np.ndarray
    pi: np.ndarray
    context: np.ndarray
    action: np.ndarray


def make_world() -> World:
    rng = np.random.default_rng(0)
    click = rng.uniform(0.05, 0.6, (CONTEXTS, ACTIONS))
    logging = rng.dirichlet(np.ones(ACTIONS) * 2, CONTEXTS)  # every action possible: positivity holds
    target = np.zeros((CONTEXTS, ACTIONS))
    target[np.arange(CONTEXTS), click.argmax(axis=1)] = 0.8  # mostly the best action, a little of the others
    target += 0.2 / ACTIONS
    return World(click, logging, target, rng.dirichlet(np.ones(CONTEXTS) * 3))


def log(world: World, n: int, seed: int) -> Log:
    rng = np.random.default_rng(seed)
    context = rng.choice(CONTEXTS, size=n, p=world.context_share)
    uniform = rng.random(n)[:, None]
    action = (uniform > world.logging[context].cumsum(axis=1)).sum(axis=1)
    reward = (rng.random(n) < world.click[context, action]).astype(float)
    return Log(reward, world.logging[context, action], world.target[context, action], context, action)


def dr(world: World, data: Log, model: np.ndarray, **options: object) -> Estimate:
    expected = (world.target[data.context] * model[data.context]).sum(axis=1)
    return doubly_robust(data.reward, data.mu, data.pi, model[data.context, data.action], expected, **options)  # type: ignore[arg-type]


def test_intervals_cover_the_true_value_in_most_runs() -> None:
    world = make_world()
    wrong_model = np.full((CONTEXTS, ACTIONS), 0.3)  # DR stays unbiased with a wrong model (the weights are right)
    covered = {"ips": 0, "snips": 0, "doubly_robust": 0}
    errors = {name: [] for name in covered}
    runs = 200
    for seed in range(runs):
        data = log(world, 2_000, seed)
        for estimate in (
            ips(data.reward, data.mu, data.pi),
            snips(data.reward, data.mu, data.pi),
            dr(world, data, wrong_model),
        ):
            covered[estimate.estimator] += estimate.low <= world.value <= estimate.high
            errors[estimate.estimator].append(estimate.value - world.value)
    for name, count in covered.items():
        assert count / runs >= 0.85, f"{name}: truth inside {count} of {runs} intervals"
        mean_error = np.mean(errors[name])
        assert abs(mean_error) < 3 * np.std(errors[name]) / np.sqrt(runs), f"{name} biased by {mean_error}"


def test_doubly_robust_with_a_perfect_reward_model_varies_less_than_ips() -> None:
    world = make_world()
    by_ips, by_dr = [], []
    for seed in range(100):
        data = log(world, 1_000, seed)
        by_ips.append(ips(data.reward, data.mu, data.pi).value)
        by_dr.append(dr(world, data, world.click).value)
    assert np.std(by_dr) < 0.9 * np.std(by_ips)
    assert np.mean(by_dr) == pytest.approx(world.value, abs=3 * np.std(by_dr) / 10)


def test_direct_method_with_the_true_model_is_the_true_value_up_to_context_sampling() -> None:
    world = make_world()
    data = log(world, 50_000, 1)
    estimate = direct((world.target[data.context] * world.click[data.context]).sum(axis=1))
    assert estimate.low <= world.value <= estimate.high
    assert estimate.effective_sample_size == 50_000


def test_clipping_caps_every_weight_and_is_stated_in_the_result() -> None:
    reward = np.array([1.0, 0.0, 1.0, 1.0])
    mu = np.array([0.01, 0.5, 0.5, 0.1])
    pi = np.array([0.9, 0.5, 0.25, 0.5])  # weights 90, 1, 0.5, 5

    clipped = ips(reward, mu, pi, clip=10)

    assert clipped.value == pytest.approx((10 + 0 + 0.5 + 5) / 4)
    assert clipped.clip == 10
    assert ips(reward, mu, pi).clip is None
    assert ips(reward, mu, pi).value == pytest.approx((90 + 0.5 + 5) / 4)
    weights = np.array([10, 1, 0.5, 5])
    assert clipped.effective_sample_size == pytest.approx(weights.sum() ** 2 / (weights**2).sum())


def test_snips_normalises_by_the_sum_of_the_weights() -> None:
    reward = np.array([1.0, 0.0, 1.0, 0.0])
    mu = np.array([0.5, 0.5, 0.25, 0.25])
    pi = np.array([1.0, 0.0, 0.5, 0.5])  # weights 2, 0, 2, 2
    assert snips(reward, mu, pi).value == pytest.approx(4 / 6)


def test_the_bootstrap_interval_is_seeded_and_close_to_the_normal_one_on_a_large_log() -> None:
    world = make_world()
    data = log(world, 5_000, 3)
    normal = ips(data.reward, data.mu, data.pi)
    first = ips(data.reward, data.mu, data.pi, bootstrap=400, seed=5)
    again = ips(data.reward, data.mu, data.pi, bootstrap=400, seed=5)

    assert first == again
    assert first.interval == "bootstrap" and normal.interval == "normal"
    assert first.value == normal.value
    assert first.low < first.value < first.high
    assert first.high - first.low == pytest.approx(normal.high - normal.low, rel=0.2)
    ratio = snips(data.reward, data.mu, data.pi, bootstrap=200, seed=5)
    assert ratio.low < ratio.value < ratio.high


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (([], [], []), "at least 2 logged decisions"),
        (([1.0, 0.0], [0.5], [0.5, 0.5]), "same length"),
        (([1.0, 0.0], [0.5, 0.0], [0.5, 0.5]), r"logged_propensity must be in \(0, 1\]"),
        (([1.0, 0.0], [0.5, 0.5], [1.5, 0.5]), r"target_probability must be in \[0, 1\]"),
        (([1.0, np.nan], [0.5, 0.5], [0.5, 0.5]), "reward must be finite"),
        (([[1.0, 0.0]], [[0.5, 0.5]], [[0.5, 0.5]]), "one-dimensional"),
    ],
)
def test_empty_or_invalid_logs_are_refused_with_the_reason(arguments: tuple[list[float], ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ips(*arguments)


def test_invalid_options_and_policies_that_never_take_a_logged_action_are_refused() -> None:
    reward, mu = [1.0, 0.0], [0.5, 0.5]
    with pytest.raises(ValueError, match="clip must be > 0"):
        ips(reward, mu, [0.5, 0.5], clip=0)
    with pytest.raises(ValueError, match="every importance weight is 0"):
        snips(reward, mu, [0.0, 0.0])
    with pytest.raises(ValueError, match="one per logged decision"):
        doubly_robust(reward, mu, [0.5, 0.5], [0.1, 0.1, 0.1], [0.2, 0.2, 0.2])
    with pytest.raises(ValueError, match="level"):
        ips(reward, mu, [0.5, 0.5], level=95)
