"""The laws' mathematics against their published definitions, each checked against an independent reference
written here step by step in numpy (not against the library's own outputs): the schedule terms S1, S2 and the
multi-power loss drop, the whole schedule laws, the final-loss laws' closed forms, su2024's implicit root, the
Bayesian coordinates' round trips, finite gradients at realistic and edge parameters, and one-row shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from bayeslaw.data.schedules import Schedule
from bayeslaw.laws import LAWS, get_law
from bayeslaw.laws import chinchilla, kaplan, su2024
from bayeslaw.laws.annealing import SLOPES as ANNEALING_SLOPES
from bayeslaw.laws.multipower import SLOPES as MULTIPOWER_SLOPES
from bayeslaw.laws.schedule_terms import annealing_area, drop_design, drop_exact, lr_area

LAMBDA = 0.999  # Tissue et al.'s momentum of the annealing area
# Luo et al.'s 25M fit (their src/config.py), the scale at which the loss drop's error is quoted in nats
PUBLISHED = {"L0": 3.04045406, "A": 0.52468604, "alpha": 0.50786857, "B": 363.78751622, "C": 2.06560812,
             "beta": 0.58279013, "gamma": 0.64142257}


def _rates(schedule, last):
    """eta_0..eta_last by the schedule: eta_0 = 0 where it warms up (the warmup starts at 0), else eta_1."""
    eta = np.array([float(schedule.lr(k)) for k in range(last + 1)])
    if schedule.warmup_steps == 0:
        eta[0] = eta[1]
    return eta


def _s1_s2(schedule, steps):
    """S1(t) = sum_{k<=t} eta_k; S2(t) = sum_{k<=t} m_k with m_k = lam m_{k-1} + (eta_{k-1} - eta_k) for the steps
    after the warmup (k > W: the first of them the fall from the peak into step W + 1), m = 0 before."""
    eta = _rates(schedule, int(max(steps)))
    s1, s2, m, area, annealed = {}, {}, 0.0, 0.0, 0.0
    for k in range(1, int(max(steps)) + 1):
        area += eta[k]
        m = LAMBDA * m + ((eta[k - 1] - eta[k]) if k > schedule.warmup_steps else 0.0)
        annealed += m
        s1[k], s2[k] = area, annealed
    return np.array([s1[t] for t in steps]), np.array([s2[t] for t in steps])


def _loss_drop(schedule, steps, c, gamma, beta):
    """sum_{k<=t} (eta_{k-1} - eta_k) G(eta_k^-gamma S_k(t)), G(x) = 1 - (C x + 1)^-beta, S_k(t) = sum_{j=k..t} eta_j,
    one term per step. A step at rate 0 adds its limit along the cooldown: G -> 0 where S_k(t) = 0 (gamma < 1)."""
    eta = _rates(schedule, int(max(steps)))
    area = np.concatenate([[0.0], np.cumsum(eta[1:])])
    out = []
    for t in steps:
        k = np.arange(1, t + 1)
        s_k = area[t] - area[k - 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            g = 1.0 - (c * eta[k] ** -gamma * s_k + 1.0) ** -beta
        g = np.where(eta[k] > 0, g, np.where(s_k > 0, 1.0, 0.0))
        out.append(np.sum((eta[k - 1] - eta[k]) * g))
    return np.array(out)


def _binned(design, c, gamma, beta):
    return np.sum(design["drop_weight"] * (1 - (c * design["drop_lr"] ** -gamma * design["drop_area"] + 1) ** -beta), 1)


def _checkpoints(schedule, every=97):
    """Checkpoints after the warmup, where the schedule laws are fitted: a regular grid, the first steps after the
    warmup, the steps around a cooldown's start and the last two steps."""
    w, total = schedule.warmup_steps, schedule.total_steps
    start = schedule.decay_start if schedule.decay_start is not None else w
    return np.unique(np.concatenate([np.arange(w + 1, total + 1, every), [w + 1, w + 2, total - 1, total],
                                     np.arange(max(w + 1, start - 2), min(total, start + 64))]))


SCHEDULES = {
    "cosine to 10%": Schedule("cosine", 3e-4, 24000, 2160, 3e-5),
    "cosine to 0": Schedule("cosine", 3e-4, 24000, 2160, 0.0),
    "cosine, no warmup": Schedule("cosine", 3e-4, 12000, 0, 3e-5),
    "linear to 0": Schedule("linear", 3e-4, 12000, 500, 0.0),
    "wsd linear": Schedule("wsd", 3e-4, 24000, 2160, 3e-5, 20000, "linear"),
    "wsd 1-sqrt to 0": Schedule("wsd", 3e-4, 24000, 2160, 0.0, 20000, "1-sqrt"),
    "wsd exponential": Schedule("wsd", 3e-4, 24000, 2160, 3e-5, 20000, "exponential"),
    "wsd from the warmup's end": Schedule("wsd", 1e-3, 6000, 300, 0.0, 300, "linear"),
    "two_stage": Schedule("two_stage", 3e-4, 16000, 2160, decay_start=8000, second_lr=9e-5),
    "two_stage at the warmup's end": Schedule("two_stage", 3e-4, 16000, 2160, decay_start=2160, second_lr=3e-5),
    "two_stage to 0": Schedule("two_stage", 3e-4, 16000, 2160, decay_start=8000, second_lr=0.0),
    "wsd_two_stage": Schedule("wsd_two_stage", 3e-4, 24000, 2160, 3e-5, 20000, "linear", second_lr=1e-4,
                              transition_start=10000, transition_steps=500),
    "constant": Schedule("constant", 3e-4, 24000, 2160),
}


# --- S1 and S2 ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SCHEDULES))
def test_the_areas_are_the_step_by_step_sums(name):
    schedule = SCHEDULES[name]
    steps = _checkpoints(schedule, every=997)
    s1, s2 = _s1_s2(schedule, steps)
    np.testing.assert_allclose(lr_area(schedule, steps), s1, rtol=1e-12)  # S1(t) includes eta_t
    np.testing.assert_allclose(annealing_area(schedule, steps), s2, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("decay_start", [2160, 2161])
def test_a_drop_right_after_the_warmup_enters_the_annealing_area(decay_start):
    # the rate falls from the peak into step W + 1: m_{W+1} = eta_W - eta_{W+1}, then decays by lam per step.
    # (S2 was 0 at every step here: the change into step W + 1 was counted as the warmup's)
    schedule = Schedule("two_stage", 3e-4, 16000, 2160, decay_start=decay_start, second_lr=3e-5)
    steps = np.array([2160, 2161, 2162, 3160])
    jump = 3e-4 - 3e-5
    expected = [0.0, jump, jump * (1 + LAMBDA), jump * (1 - LAMBDA ** 1000) / (1 - LAMBDA)]
    np.testing.assert_allclose(annealing_area(schedule, steps), expected, rtol=1e-12)


def test_a_constant_rate_anneals_nothing_and_its_area_grows_linearly():
    schedule = Schedule("constant", 2e-4, 5000, 100)
    steps = np.array([100, 101, 3000, 5000])
    np.testing.assert_array_equal(annealing_area(schedule, steps), 0.0)  # the warmup's rises are not annealing
    np.testing.assert_allclose(lr_area(schedule, steps), 2e-4 * (101 / 2 + steps - 100), rtol=1e-12)


# --- the multi-power law's loss drop ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SCHEDULES))
def test_the_binned_loss_drop_is_within_1e4_nats_of_the_per_step_sum(name):
    """docs: within 1e-4 nats of the per-step sum at checkpoints after the warmup, at the published scale (B ~ 400,
    peak rate 3e-4: B eta_peak ~ 0.1 nats; the 1e-3 schedule is taken at the same B eta_peak)."""
    schedule = SCHEDULES[name]
    steps = _checkpoints(schedule)
    c, gamma, beta = PUBLISHED["C"], PUBLISHED["gamma"], PUBLISHED["beta"]
    b = PUBLISHED["B"] * 3e-4 / schedule.peak_lr
    reference = _loss_drop(schedule, steps, c, gamma, beta)
    design = drop_design(schedule, steps)
    assert np.all(np.isfinite(design["drop_lr"])) and np.all(design["drop_area"] >= 0)
    assert b * np.abs(_binned(design, c, gamma, beta) - reference).max() < 1e-4
    # the library's own step-by-step reference is finite (a rate of 0 at the last step: 0 * inf before) and agrees
    exact = drop_exact(schedule, steps, gamma=gamma, c=c, beta=beta)
    assert np.all(np.isfinite(exact))
    np.testing.assert_allclose(b * exact, b * reference, rtol=0, atol=1e-9)


def test_the_loss_drop_is_zero_without_a_change_of_rate_and_exact_at_a_jump():
    constant = Schedule("constant", 3e-4, 8000, 0)
    steps = np.array([1, 2, 4000, 8000])
    design = drop_design(constant, steps)
    np.testing.assert_array_equal(_binned(design, 2.0, 0.6, 0.6), 0.0)
    np.testing.assert_array_equal(drop_exact(constant, steps, gamma=0.6, c=2.0, beta=0.6), 0.0)
    # one jump of the rate at step 4000 to eta_2: the drop is (eta_1 - eta_2) G(eta_2^-gamma eta_2 (t - 3999))
    jump = Schedule("two_stage", 3e-4, 8000, 0, decay_start=4000, second_lr=5e-5)
    steps = np.array([3999, 4000, 4001, 6000, 8000])
    n = np.maximum(steps - 3999, 0)
    expected = np.where(n > 0, (3e-4 - 5e-5) * (1 - (2.0 * 5e-5 ** (1 - 0.6) * n + 1) ** -0.6), 0.0)
    np.testing.assert_allclose(_binned(drop_design(jump, steps), 2.0, 0.6, 0.6), expected, rtol=1e-9, atol=1e-18)


def test_the_loss_drop_grows_along_a_cooldown():
    # every step of a cooldown adds a positive term, and G grows with S_k(t): LD rises through the cooldown
    schedule = Schedule("wsd", 3e-4, 6000, 0, 3e-5, 4000, "linear")
    steps = np.arange(4000, 6001, 50)
    drop = _binned(drop_design(schedule, steps), PUBLISHED["C"], PUBLISHED["gamma"], PUBLISHED["beta"])
    assert drop[0] == 0.0 and np.all(np.diff(drop) > 0)


# --- the schedule laws as a whole ---------------------------------------------------------------------------------

def _table(schedules, params):
    frames = [pd.DataFrame({"run": name, "step": _checkpoints(s, every=331), "schedule": s.to_json()})
              for name, s in schedules.items()]
    return pd.concat(frames, ignore_index=True).assign(params=params)


SLOPE_VALUES = {"l0_n": -0.05, "a_n": 0.1, "alpha_n": 0.02, "b_n": 0.1, "c_n": 0.1,
                "l0_lr": 0.02, "a_lr": 0.25, "alpha_lr": 0.05, "b_lr": -0.4, "c_lr": -0.4}


def _constants(p, params, peak_lr, names):
    """log-constants linear in log(N / 1e8) and log(eta / 1e-3), alpha shifted in log N and scaled by eta^alpha_lr."""
    x_n, x_lr = np.log(params / 1e8), np.log(peak_lr / 1e-3)
    out = {k: np.exp(np.log(p[k.upper()]) + p[f"{k}_n"] * x_n + p[f"{k}_lr"] * x_lr) for k in names}
    return {**out, "alpha": (p["alpha"] + p["alpha_n"] * x_n) * np.exp(p["alpha_lr"] * x_lr)}


def test_the_multipower_law_is_luo_et_al_s_formula():
    """L = L0 + A S1^-alpha - B sum_k d_k G(eta_k^-gamma S_k(t)), every constant at the run's size and peak rate."""
    law = get_law("multipower")
    p = {**PUBLISHED, **{k: SLOPE_VALUES[k] for k in MULTIPOWER_SLOPES}}
    picked = {k: SCHEDULES[k] for k in ("cosine to 10%", "wsd exponential", "two_stage", "cosine to 0")}
    df = _table(picked, 3e8)
    loss = np.asarray(law.loss({k: jnp.asarray(v) for k, v in law.from_natural(p).items()}, **law.columns(df)))
    for name, schedule in picked.items():
        rows = (df["run"] == name).to_numpy()
        steps = df.loc[rows, "step"].to_numpy()
        k = _constants(p, 3e8, schedule.peak_lr, ("l0", "a", "b"))
        s1, _ = _s1_s2(schedule, steps)
        expected = k["l0"] + k["a"] * s1 ** -k["alpha"] - k["b"] * _loss_drop(schedule, steps, p["C"], p["gamma"],
                                                                                 p["beta"])
        # the binned sum's 1e-4 nats at the published B eta_peak, scaled to this B(N, eta) eta_peak (1.8 times it)
        scale = k["b"] * schedule.peak_lr / (PUBLISHED["B"] * 3e-4)
        np.testing.assert_allclose(loss[rows], expected, rtol=0, atol=1e-4 * scale)


def test_the_annealing_law_is_tissue_et_al_s_formula():
    law = get_law("annealing")
    p = {"L0": 2.8, "A": 0.5, "alpha": 0.5, "C": 0.45, **{k: SLOPE_VALUES[k] for k in ANNEALING_SLOPES}}
    picked = {k: SCHEDULES[k] for k in ("cosine to 0", "wsd linear", "two_stage at the warmup's end")}
    df = _table(picked, 5e7)
    loss = np.asarray(law.loss({k: jnp.asarray(v) for k, v in law.from_natural(p).items()}, **law.columns(df)))
    for name, schedule in picked.items():
        rows = (df["run"] == name).to_numpy()
        k = _constants(p, 5e7, schedule.peak_lr, ("l0", "a", "c"))
        s1, s2 = _s1_s2(schedule, df.loc[rows, "step"].to_numpy())
        np.testing.assert_allclose(loss[rows], k["l0"] + k["a"] * s1 ** -k["alpha"] - k["c"] * s2, rtol=1e-12)


# --- the final-loss laws ------------------------------------------------------------------------------------------

def _brute_force_optimum(law, theta, c6):
    """argmin over N of the law on D = C / (6 N), on a fine log grid."""
    n = np.exp(np.linspace(np.log(1e5), np.log(1e14), 200001))
    return n[np.argmin(np.asarray(law.log_loss(theta, params=n, tokens=c6 / n)))]


@pytest.mark.parametrize("name, natural", [
    ("chinchilla", {"E": 1.817, "A": 482.0, "B": 2085.0, "alpha": 0.3478, "beta": 0.3658}),  # Besiroglu et al.
    ("kaplan", {"Nc": 6.4e13, "Dc": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103}),  # Kaplan et al. eq. 1.5
    ("kaplan_e", {"E": 1.5, "Nc": 6.4e13, "Dc": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103}),
])
def test_final_loss_laws_match_their_formulas_and_split(name, natural):
    law = get_law(name)
    theta = law.from_natural(natural)
    n, d = np.array([7e7, 1e9, 7e10]), np.array([1e9, 1e11, 1.4e12])
    if name == "chinchilla":
        expected = natural["E"] + natural["A"] / n ** natural["alpha"] + natural["B"] / d ** natural["beta"]
    else:
        ratio = natural["alpha_N"] / natural["alpha_D"]
        expected = natural.get("E", 0.0) + ((natural["Nc"] / n) ** ratio + natural["Dc"] / d) ** natural["alpha_D"]
    np.testing.assert_allclose(np.asarray(law.loss(theta, params=n, tokens=d)), expected, rtol=1e-12)
    # decreasing in N and in D
    grid = np.exp(np.linspace(np.log(1e6), np.log(1e13), 50))
    assert np.all(np.diff(np.asarray(law.log_loss(theta, params=grid, tokens=1e11))) < 0)
    assert np.all(np.diff(np.asarray(law.log_loss(theta, params=1e9, tokens=grid * 100))) < 0)
    for c6 in (1e19, 1e23):
        optimum = np.exp(law.optimal_log_params(theta, np.log(c6)))
        assert optimum == pytest.approx(_brute_force_optimum(law, theta, c6), rel=1e-3)


def test_the_compute_law_reads_the_given_flops_else_6nd():
    law = get_law("compute")
    theta = law.from_natural({"E": 1.7, "C0": 1e12, "gamma": 0.15})
    flops = np.array([1e18, 1e21])
    np.testing.assert_allclose(np.asarray(law.loss(theta, flops=flops)), 1.7 + (1e12 / flops) ** 0.15, rtol=1e-12)
    df = pd.DataFrame({"params": [1e8, 1e8], "tokens": [1e10, 1e10], "flops": [np.nan, 5e18]})
    np.testing.assert_allclose(law.columns(df)["flops"], [6e18, 5e18])


def test_su2024_solves_its_implicit_law():
    """L = (Nc/N)^alphaN + (Sc (1 + Bcrit(L)/B) / S)^alphaS with Bcrit(L) = B* / L^(1/alphaB), written out."""
    c = {"Nc": 8.8e13, "alpha_N": 0.076, "Sc": 2.1e3, "alpha_S": 0.76, "B*": 2e8, "alpha_B": 0.21}
    law = get_law("su2024")
    theta = {k: jnp.asarray(v) for k, v in law.from_natural(c).items()}
    params, steps = np.array([1e7, 1e9, 1e11, 1e9]), np.array([1.0, 1e3, 1e5, 1e7])
    batch = np.array([1.0, 1e6, 4e6, 1e10])  # tokens per step, from far below Bcrit to far above
    loss = np.exp(np.asarray(law.log_loss(theta, params=params, steps=steps, batch_size=batch)))
    bcrit = c["B*"] / loss ** (1 / c["alpha_B"])
    rhs = (c["Nc"] / params) ** c["alpha_N"] + (c["Sc"] * (1 + bcrit / batch) / steps) ** c["alpha_S"]
    np.testing.assert_allclose(loss, rhs, rtol=1e-12)
    np.testing.assert_allclose(su2024.steps_to_loss(theta, params, loss, batch), steps, rtol=1e-9)
    # fewer steps or a smaller batch never lower the loss
    more = np.exp(np.asarray(law.log_loss(theta, params=params, steps=steps * 2, batch_size=batch)))
    wider = np.exp(np.asarray(law.log_loss(theta, params=params, steps=steps, batch_size=batch * 2)))
    assert np.all(more < loss) and np.all(wider < loss)
    # the implicit gradient against central differences in every parameter
    vector = jnp.array([theta[k] for k in law.theta_names])

    def total(v):
        return jnp.sum(law.log_loss(law.unpack(v), params=params, steps=steps, batch_size=batch))

    gradient = np.asarray(jax.grad(total)(vector))
    eps = 1e-6
    numeric = [(total(vector.at[i].add(eps)) - total(vector.at[i].add(-eps))) / (2 * eps) for i in range(len(vector))]
    np.testing.assert_allclose(gradient, np.asarray(numeric), rtol=1e-6, atol=1e-9)


# --- the Bayesian coordinates -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(n for n, law in LAWS.items() if law.sampling is not None))
def test_the_sampled_coordinates_round_trip(name):
    law = get_law(name)
    spec = law.sampling
    rng = np.random.default_rng(1)
    for _ in range(5):
        z = spec.vector("center") + spec.vector("scale") * rng.standard_normal(len(spec.names))
        theta = {k: np.asarray(v) for k, v in spec.to_law(jnp.asarray(z)).items()}
        np.testing.assert_allclose(spec.from_law(theta), z, rtol=1e-10, atol=1e-10)
        natural = law.natural(theta)
        back = law.from_natural(natural)
        for k in law.theta_names:
            np.testing.assert_allclose(back[k], theta[k], rtol=1e-10, atol=1e-12)


def test_chinchilla_family_frame_inverts_and_keeps_volume():
    """log_abs_det_jacobian is 0: the map's Jacobian has |det| = 1 (checked by autodiff), and it inverts."""
    frame = chinchilla.family_frame(np.array([np.log(3e8)]), np.array([np.log(5e10)]), np.array([1.0]))
    rng = np.random.default_rng(2)
    spec = chinchilla.CHINCHILLA.sampling
    for _ in range(3):
        z = jnp.asarray(spec.vector("center") + spec.vector("scale") * rng.standard_normal(5))
        np.testing.assert_allclose(frame._inverse(frame(z[None]))[0], z, rtol=1e-10, atol=1e-10)
        jacobian = np.asarray(jax.jacobian(lambda v: frame(v[None])[0])(z))
        assert abs(np.linalg.slogdet(jacobian)[1]) < 1e-10
    # the frame reads the law: exp(psi_0) is the loss at the family's mean N and D
    law = chinchilla.to_law(z)
    loss = float(np.exp(chinchilla.chinchilla_log_loss(law, params=3e8, tokens=5e10)))
    assert float(np.exp(frame(z[None])[0, 0])) == pytest.approx(loss, rel=1e-12)


def test_kaplan_reference_coordinates_are_the_terms_at_the_reference_sizes():
    theta = kaplan.to_law(jnp.asarray([0.9, 0.3, np.log(0.076), np.log(0.103)]))
    # n_ref: the log loss of a 1e9-parameter model on unlimited data; d_ref: of an unlimited model on 1e11 tokens
    assert float(0.076 * (theta["log_nc"] - np.log(1e9))) == pytest.approx(0.9)
    assert float(0.103 * (theta["log_dc"] - np.log(1e11))) == pytest.approx(0.3)


# --- gradients and shapes -----------------------------------------------------------------------------------------

def _one_row(schedule):
    return pd.DataFrame({"run": ["r"], "step": [schedule.total_steps], "schedule": [schedule.to_json()],
                         "params": [1e8], "tokens": [1e10], "batch_size": [1e6]})


EDGES = {"multipower": ({"alpha": 0.0}, {"beta": 0.0}, {"gamma": 0.0}, {"gamma": 2.0}, {"c": -20.0}, {"b": -20.0}),
         "annealing": ({"alpha": 0.0}, {"c": -20.0}, {"c": 5.0})}


@pytest.mark.parametrize("name", sorted(LAWS))
def test_gradients_are_finite_and_one_row_keeps_its_shape(name):
    """At the grid's median start and the laws' lower bounds, on one checkpoint of one run (the last step of a
    cosine to 0: a rate of 0 in the loss drop), for theta as one value, as draws (S, 1) and as one value per row."""
    law = get_law(name)
    df = _one_row(Schedule("cosine", 3e-4, 4000, 200, 0.0))
    columns = law.columns(df)
    start = {k: float(np.median(np.asarray(law.init_grid[k], dtype=float))) for k in law.theta_names}
    starts = [start, *({**start, **edge} for edge in EDGES.get(name, ())),
              {**start, **{k: v for k, v in law.lower_bounds.items()}}]
    for theta in starts:
        vector = jnp.array([theta[k] for k in law.theta_names])
        gradient = jax.grad(lambda v: jnp.sum(law.log_loss(law.unpack(v), **columns)))(vector)
        assert np.all(np.isfinite(np.asarray(gradient))), (name, theta)
    one = {k: jnp.asarray(v) for k, v in start.items()}
    assert law.loss(one, **columns).shape == (1,)
    assert law.loss({k: jnp.full((3, 1), v) for k, v in start.items()}, **columns).shape == (3, 1)
    assert law.loss({k: jnp.full((1,), v) for k, v in start.items()}, **columns).shape == (1,)
