"""Customer lifetime value on CDNOW: BG/NBD and Gamma-Gamma fits beside Fader, Hardie & Lee 2005, and a holdout test.

    .venv/bin/python bench/clv_cdnow.py

Reads the CDNOW files in ../shared/data/cdnow (never copied into the repository). It fits BG/NBD on the shipped
2,357-customer calibration summary and prints r, α, a, b and the log-likelihood beside the published fit; builds the
same summary from the transactions with `summarise` (39 weeks of calibration ending 1997-09-30) and checks it
against the shipped one; predicts each customer's repeat purchases in weeks 40–78 (1997-10-01 to 1998-06-30) and
compares them with what happened; fits Gamma-Gamma beside the published p, q, γ; and, when the `lifetimes` package
is importable, fits its BetaGeoFitter and GammaGammaFitter on the same data in the same run. Ends with the serving
cost of one `Clv.value`.
"""

from __future__ import annotations

import csv
import sys
import time
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cartrecover.learn.clv import (  # noqa: E402
    Summary,
    bgnbd_log_likelihood,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
    summarise,
)
from cartrecover.models import clv as serving  # noqa: E402
from cartrecover.models.clv import BgNbd, Clv, GammaGamma  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cdnow"
CALIBRATION_END = date(1997, 9, 30)
HOLDOUT_END = date(1998, 6, 30)
HOLDOUT_WEEKS = 39.0
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "LL": -9582.4}
PUBLISHED_GG = {"p": 6.25, "q": 3.74, "v": 15.45}


def main() -> None:
    shipped = read_shipped_summary()
    started = time.perf_counter()
    model = fit_bgnbd(shipped.x, shipped.t_x, shipped.T)
    seconds = time.perf_counter() - started
    ll = bgnbd_log_likelihood(model, shipped.x, shipped.t_x, shipped.T)
    print(f"BG/NBD on the shipped summary ({len(shipped.x):,} customers, fit in {seconds * 1000:.0f} ms)")
    compare(PUBLISHED_BGNBD, {"r": model.r, "alpha": model.alpha, "a": model.a, "b": model.b, "LL": ll})

    transactions = read_transactions()
    ours = summarise(((c, d, amount) for c, d, amount in transactions), calibration_end=CALIBRATION_END, period_days=7)
    check_summary(ours, shipped)
    own = fit_bgnbd(ours.x, ours.t_x, ours.T)
    print(f"\nBG/NBD on our own summary: r {own.r:.4f}  α {own.alpha:.4f}  a {own.a:.4f}  b {own.b:.4f}")
    holdout(own, ours, transactions)

    spend = fit_gamma_gamma(ours.x, ours.mean_spend)
    spend_ll = gamma_gamma_log_likelihood(spend, ours.x, ours.mean_spend)
    print(f"\nGamma-Gamma on the {int((ours.x > 0).sum())} repeat buyers of our summary (mean repeat spend per day)")
    compare(PUBLISHED_GG, {"p": spend.p, "q": spend.q, "v": spend.v}, names={"v": "γ"})
    print(f"log-likelihood {spend_ll:.2f}; population mean spend p·γ/(q−1) = {spend.expected_spend(0, 0):.2f} $")

    with_lifetimes(shipped, ours, own, spend)
    serving_cost(Clv(own, spend, period_days=7, horizon_periods=52))


def compare(published: dict[str, float], measured: dict[str, float], names: dict[str, str] | None = None) -> None:
    """One row per parameter: published, measured, relative error."""
    labels = {"alpha": "α", **(names or {})}
    print(f"  {'':<4} {'published':>10} {'measured':>12} {'rel. error':>11}")
    for key, anchor in published.items():
        value = measured[key]
        print(f"  {labels.get(key, key):<4} {anchor:>10} {value:>12.4f} {abs(value - anchor) / abs(anchor):>10.3%}")


def read_shipped_summary() -> Summary:
    with (DATA / "cdnow_customers_summary_with_transactions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    column = {name: np.array([float(row[name]) for row in rows]) for name in ("x", "t_x", "T", "zbar")}
    return Summary(tuple(int(row["ID"]) for row in rows), column["x"], column["t_x"], column["T"], column["zbar"])


def read_transactions() -> list[tuple[int, date, float]]:
    """(sample id, day, dollars) of every purchase of the 1/10 sample, Jan 1997 – Jun 1998."""
    rows = []
    with (DATA / "CDNOW_sample.txt").open() as handle:
        for line in handle:
            _, customer, day, _, dollars = line.split()
            rows.append((int(customer), datetime.strptime(day, "%Y%m%d").date(), float(dollars)))
    return rows


def check_summary(ours: Summary, shipped: Summary) -> None:
    """Our summary against the shipped one, customer by customer (the shipped file rounds to 2 decimals)."""
    position = {c: i for i, c in enumerate(ours.customers)}
    index = np.array([position[c] for c in shipped.customers])
    print(f"\nsummarise(CDNOW_sample.txt): {len(ours.customers):,} customers (shipped {len(shipped.customers):,})")
    for name in ("x", "t_x", "T", "mean_spend"):
        diff = np.abs(getattr(ours, name)[index] - getattr(shipped, name))
        within = "yes" if diff.max() <= 0.005 + 1e-9 else "NO"
        print(f"  {name:<10} max |ours − shipped| = {diff.max():.4f}; within the file's rounding to 0.01: {within}")


def holdout(model: BgNbd, summary: Summary, transactions: list[tuple[int, date, float]]) -> None:
    """Predicted vs actual repeat purchases (days with a purchase) in weeks 40–78."""
    days: dict[int, set[date]] = defaultdict(set)
    for customer, day, _ in transactions:
        if CALIBRATION_END < day <= HOLDOUT_END:
            days[customer].add(day)
    actual = np.array([len(days[c]) for c in summary.customers], dtype=float)
    predicted = np.array(
        [
            model.expected_purchases(HOLDOUT_WEEKS, x, t_x, T)
            for x, t_x, T in zip(summary.x, summary.t_x, summary.T, strict=True)
        ]
    )
    unconditional = sum(
        model.expected_unconditional(T + HOLDOUT_WEEKS) - model.expected_unconditional(T) for T in summary.T
    )
    total_error = (predicted.sum() - actual.sum()) / actual.sum()
    print("\nHoldout, weeks 40–78 (1997-10-01 to 1998-06-30), repeat purchases (one a day at most):")
    print(f"  actual total {actual.sum():.0f}; conditional E[Y(39) | x, t_x, T] summed {predicted.sum():.1f}")
    print(f"  relative error of the total (predicted − actual) / actual: {total_error:+.2%}   (target: |·| < 12 %)")
    print("  per customer:                                   MAE    RMSE   correlation")
    naive = summary.x / np.maximum(summary.T, 1e-9) * HOLDOUT_WEEKS
    for label, guess in [
        ("BG/NBD E[Y(39) | x, t_x, T]", predicted),
        ("baseline: calibration rate x/T × 39", naive),
        ("baseline: everyone the calibration mean", np.full_like(actual, summary.x.mean() * 1.0)),
        ("baseline: zero", np.zeros_like(actual)),
    ]:
        error = guess - actual
        corr = np.corrcoef(guess, actual)[0, 1] if guess.std() > 0 else float("nan")
        print(f"    {label:<44} {np.abs(error).mean():.3f}  {np.sqrt((error**2).mean()):.3f}   {corr:.3f}")
    print(
        f"  unconditional (tracking) forecast Σ E[X(T+39)] − E[X(T)]: {unconditional:.1f} ({(unconditional - actual.sum()) / actual.sum():+.2%})"
    )
    print("  by calibration frequency x:   x    n   actual mean   predicted mean")
    for low, high in [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 99)]:
        group = (summary.x >= low) & (summary.x <= high)
        label = f"{low}" if low == high else f"{low}+"
        print(f"  {'':<28} {label:>3} {group.sum():>5} {actual[group].mean():>12.3f} {predicted[group].mean():>15.3f}")


def with_lifetimes(shipped: Summary, ours: Summary, model: BgNbd, spend: GammaGamma) -> None:
    """The `lifetimes` package's fits on the same data, when it can be imported (it is not a dependency)."""
    try:
        import pandas as pd
        from lifetimes import BetaGeoFitter, GammaGammaFitter
    except ImportError as error:
        print(f"\nlifetimes: not importable here ({error}); `pip install --no-deps lifetimes autograd dill` to compare")
        return
    started = time.perf_counter()
    fitter = BetaGeoFitter().fit(pd.Series(shipped.x), pd.Series(shipped.t_x), pd.Series(shipped.T))
    seconds = time.perf_counter() - started
    theirs = BgNbd(*(float(fitter.params_[k]) for k in ("r", "alpha", "a", "b")))
    ll = bgnbd_log_likelihood(theirs, shipped.x, shipped.t_x, shipped.T)
    print(
        f"\nlifetimes {sys.modules['lifetimes'].__version__} BetaGeoFitter on the shipped summary ({seconds * 1000:.0f} ms):"
    )
    print(
        f"  r {theirs.r:.4f}  α {theirs.alpha:.4f}  a {theirs.a:.4f}  b {theirs.b:.4f}  LL {ll:.2f} (ours: see above)"
    )
    refit = BetaGeoFitter().fit(pd.Series(ours.x), pd.Series(ours.t_x), pd.Series(ours.T))
    conditional = refit.conditional_expected_number_of_purchases_up_to_time(
        HOLDOUT_WEEKS, pd.Series(ours.x), pd.Series(ours.t_x), pd.Series(ours.T)
    )
    mine = np.array(
        [model.expected_purchases(HOLDOUT_WEEKS, *row) for row in zip(ours.x, ours.t_x, ours.T, strict=True)]
    )
    print(
        f"  holdout sum of its E[Y(39)] on our summary: {float(conditional.sum()):.1f} (ours {mine.sum():.1f});"
        f" largest per-customer difference {float(np.abs(conditional.to_numpy() - mine).max()):.2e}"
    )
    buyers = ours.x > 0
    gg = GammaGammaFitter().fit(pd.Series(ours.x[buyers]), pd.Series(ours.mean_spend[buyers]))
    p, q, v = (float(gg.params_[k]) for k in ("p", "q", "v"))
    print(
        f"  GammaGammaFitter: p {p:.4f}  q {q:.4f}  γ {v:.4f} (ours p {spend.p:.4f}  q {spend.q:.4f}  γ {spend.v:.4f})"
    )


def serving_cost(model: Clv) -> None:
    """µs per `Clv.value`, computed afresh (cache cleared) and from the cache, for a few histories."""
    print("\nServing: µs per Clv.value (52-week horizon), best of 5 rounds of 2,000 calls")
    print(f"  {'x':>3} {'t_x':>6} {'T':>6} {'value $':>9} {'fresh':>7} {'cached':>7}")
    for x, t_x, T in [(0, 0.0, 0.5), (0, 0.0, 30.0), (2, 30.0, 38.0), (5, 20.0, 38.0), (20, 30.0, 38.0)]:
        fresh = best_of(lambda x=x, t_x=t_x, T=T: (serving._growth.cache_clear(), model.value(x, t_x, T, 30.0)))
        cached = best_of(lambda x=x, t_x=t_x, T=T: model.value(x, t_x, T, 30.0))
        print(f"  {x:>3} {t_x:>6} {T:>6} {model.value(x, t_x, T, 30.0):>9.2f} {fresh:>7.2f} {cached:>7.2f}")


def best_of(call: object, rounds: int = 5, calls: int = 2_000) -> float:
    assert callable(call)
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - started) / calls * 1e6)
    return best


if __name__ == "__main__":
    main()
