"""The paper's claims checked against a sweep, with paired statistics over seeds.

Seeds are paired across methods (same data, same seed ⇒ same LoRA init and data order), so a method's effect is
measured on per-seed differences ``Δ_s = metric(method, s) − metric(baseline, s)``: mean ± the 95% Student-t
half-width of the Δ's. A verdict says "holds" only when the interval excludes zero in the claimed direction.

Claims (arXiv 2606.05025): IGA's OOD-surface accuracy gain over ERM-SFT (paper: up to +14.3 points); the LCS of
ERM against IGA's (paper: 0.142 vs 0.031, a ratio of 4.6; lower is more consistent); IGA against every baseline.
Where the jobs evaluated the cue-free validation split, also the mechanism the paper argues for — less reliance on
domain-dependent shortcuts than ERM: the cue gain (validation accuracy with cues − without, same problems) and the
excess wrong-cue following (share of answers equal to a wrong cue's value, shown − hidden); lower is better.
Where the sweep ran IGA and ERM under the same changed data (ablation groups ``iga:S`` and ``erm:S``: no cues,
stronger cues, fewer training domains), IGA − ERM per setting (:func:`same_setting_comparison`).

Every verdict is one test at the 5 % level, and the file makes many (three metrics against every other method,
plus the claims): :func:`multiple_comparisons` counts them, says how many would come out by chance alone, and
which of the significant ones survive Holm's step-down correction over all of them.

Run: ``python studies/claims.py runs/study --out docs/results/claims.md`` (also writes ``claims.json``).

Example:
    >>> paired_difference({0: 0.5, 1: 0.6}, {0: 0.3, 1: 0.3, 2: 0.9}).n
    2
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from iga.sweeps.sweep_results import (
    CUE_GAIN,
    MeanCI,
    by_group,
    load_finished,
    mean_ci,
    select_models,
    selection_line,
    summary_difference,
    t_quantile_975,
)

PAPER_OOD_GAIN_POINTS = 14.3
PAPER_LCS_ERM, PAPER_LCS_IGA = 0.142, 0.031

METRICS = {
    "ood_accuracy": ("eval", "summary", "ood_accuracy"),
    "id_accuracy": ("eval", "summary", "id_accuracy"),
    "lcs": ("eval", "lcs", "canonical"),
    # LCS of the same model with the domains' rows randomly paired: what "no consistency" scores
    "lcs_permutation": ("eval", "lcs", "permutation_mean"),
}
#: Shortcut reliance, per run: metric -> (minuend, subtrahend) in eval.summary.
SHORTCUT_METRICS = {
    "cue_gain": CUE_GAIN,
    "cue_excess_follow": ("cue_follow", "cue_follow_nocue"),
}


def _run_metric(record: Any, name: str) -> float | None:
    if name in METRICS:
        return record.metric(*METRICS[name])
    return summary_difference(record, *SHORTCUT_METRICS[name])


def per_seed(
    sweep_dir: str | os.PathLike, *, ablations: bool = False
) -> dict[str, dict[str, dict[int, float]]]:
    """``{group: {metric: {seed: value}}}`` of the finished, validation-selected jobs: the main comparison only,
    or with ``ablations=True`` the ablation groups (``iga:tau=3``, ``erm:cues=off``, …) too."""
    kept = _kept_runs(sweep_dir)
    return _per_seed(r for r in kept if ablations or r.ablation is None)


def _kept_runs(sweep_dir: str | os.PathLike, select: str = "val") -> list[Any]:
    _, finished = load_finished(sweep_dir)
    return select_models(finished, select=select)[0]


def _per_seed(records: Iterable[Any]) -> dict[str, dict[str, dict[int, float]]]:
    return {
        group: {
            name: {r.seed: v for r in members if (v := _run_metric(r, name)) is not None}
            for name in (*METRICS, *SHORTCUT_METRICS)
        }
        for group, members in by_group(records).items()
    }


SETTING_METRICS = ("ood_accuracy", "id_accuracy", "cue_gain")


def same_setting_comparison(
    data: Mapping[str, Mapping[str, Mapping[int, float]]], *, method: str = "iga", baseline: str = "erm"
) -> list[dict[str, Any]]:
    """``method − baseline`` under every data setting both ran: the main comparison (setting ``"main"``) and each
    pair of ablation groups ``{method}:S`` / ``{baseline}:S`` (``iga:cues=off`` with ``erm:cues=off``), paired
    over the seeds both have. A group of one method alone (``iga:tau=3``) has no partner and is left out.

    Example:
        >>> d = {"iga": {"ood_accuracy": {0: 0.3}}, "erm": {"ood_accuracy": {0: 0.2}},
        ...      "iga:K=2": {"ood_accuracy": {0: 0.1}}, "erm:K=2": {"ood_accuracy": {0: 0.4}}, "iga:tau=3": {}}
        >>> [(r["setting"], round(r["ood_accuracy"]["difference"]["mean"], 2)) for r in same_setting_comparison(d)]
        [('main', 0.1), ('K=2', -0.3)]
    """
    pairs = [("main", method, baseline)] if method in data and baseline in data else []
    for group in sorted(data):
        setting = group.removeprefix(f"{method}:")
        if setting != group and f"{baseline}:{setting}" in data:
            pairs.append((setting, group, f"{baseline}:{setting}"))
    rows = []
    for setting, mine, theirs in pairs:
        row: dict[str, Any] = {"setting": setting, "groups": [mine, theirs]}
        for metric in SETTING_METRICS:
            a, b = data[mine].get(metric, {}), data[theirs].get(metric, {})
            if a and b:
                d = paired_difference(a, b)
                higher = metric != "cue_gain"
                row[metric] = {
                    method: mean_ci(a.values()).to_json(),
                    baseline: mean_ci(b.values()).to_json(),
                    "difference": d.to_json(),
                    "verdict": _verdict(d, higher_is_better=higher),
                    "p": paired_p_value(d),
                }
        rows.append(row)
    return rows


def paired_difference(a: Mapping[int, float], b: Mapping[int, float]) -> MeanCI:
    """Mean ± 95% CI of ``a[s] − b[s]`` over the seeds both have."""
    return mean_ci([a[s] - b[s] for s in sorted(set(a) & set(b))])


def paired_p_value(diff: MeanCI) -> float | None:
    """Two-sided p-value of the paired t-test behind ``diff`` (the test whose 95 % interval the verdict reads);
    None below 2 seeds. Equal differences on every seed (no spread) give 0, or 1 when they are all 0.

    >>> round(paired_p_value(paired_difference({0: 0.3, 1: 0.33, 2: 0.30}, {0: 0.2, 1: 0.22, 2: 0.18})), 4)
    0.0027
    """
    if diff.n < 2 or diff.ci95 is None or diff.mean is None:
        return None
    if diff.ci95 == 0:
        return 1.0 if diff.mean == 0 else 0.0
    from scipy import stats

    standard_error = diff.ci95 / t_quantile_975(diff.n - 1)  # the interval is mean ± t(0.975, n−1)·SE
    return float(2 * stats.t.sf(abs(diff.mean) / standard_error, diff.n - 1))


def holm(p_values: Mapping[str, float], *, alpha: float = 0.05) -> set[str]:
    """Holm's step-down procedure: the tests (keys) rejected at family-wise level ``alpha``.

    >>> sorted(holm({"a": 0.001, "b": 0.02, "c": 0.03, "d": 0.5}))  # 0.001 < .05/4; 0.02 > .05/3 stops
    ['a']
    """
    rejected: set[str] = set()
    for rank, (name, p) in enumerate(sorted(p_values.items(), key=lambda kv: kv[1])):
        if p > alpha / (len(p_values) - rank):
            break
        rejected.add(name)
    return rejected


def multiple_comparisons(claims: Mapping[str, Any], *, alpha: float = 0.05) -> dict[str, Any]:
    """Every test the claims make (a verdict with a p-value), how many are significant one by one, how many
    would be by chance alone if nothing differed (``alpha`` × tests), and those that survive Holm's correction.
    """
    tests: dict[str, tuple[float, str]] = {}
    m = claims["method"]
    named = [
        (f"{m} − erm, OOD-surface", claims["ood_gain_over_erm"]),
        (f"{m} − erm, LCS", claims["lcs"]),
        *((f"{m} − erm, {SHORTCUT_LABELS[k]}", v) for k, v in claims.get("shortcut", {}).items()),
        *(
            (f"{m} − {other}, {METRIC_LABELS[metric]}", cell)
            for other, row in claims["versus"].items()
            for metric, cell in row.items()
        ),
        # the other data settings (the main one is the claims' own iga − erm)
        *(
            (f"{m} − erm under {row['setting']}, {SETTING_LABELS[metric]}", row[metric])
            for row in claims.get("settings", [])
            if row["setting"] != "main"
            for metric in SETTING_METRICS
            if metric in row
        ),
    ]
    # the claims' iga − erm tests reappear in the table against every method: one name, counted once
    for name, cell in named:
        if cell.get("p") is not None:
            tests[name] = (cell["p"], cell["verdict"])
    significant = sorted(n for n, (_, verdict) in tests.items() if verdict in ("better", "worse"))
    kept = holm({n: p for n, (p, _) in tests.items()}, alpha=alpha)
    return {
        "alpha": alpha,
        "tests": len(tests),
        "expected_by_chance": alpha * len(tests),
        "significant_one_by_one": significant,
        "significant_after_holm": sorted(kept),
    }


METRIC_LABELS = {"ood_accuracy": "OOD-surface", "id_accuracy": "ID", "lcs": "LCS"}
SETTING_LABELS = {**METRIC_LABELS, "cue_gain": "cue gain"}


def _verdict(diff: MeanCI, *, higher_is_better: bool = True) -> str:
    if diff.n == 0:
        return "no paired seeds"
    if diff.n < 2 or diff.ci95 is None:
        return "one seed: no test"
    lo, hi = diff.mean - diff.ci95, diff.mean + diff.ci95
    if (lo > 0) if higher_is_better else (hi < 0):
        return "better"
    if (hi < 0) if higher_is_better else (lo > 0):
        return "worse"
    return "no significant difference"


def check_claims(
    data: Mapping[str, Mapping[str, Mapping[int, float]]], *, method: str = "iga"
) -> dict[str, Any]:
    """The claims as numbers and verdicts (see the module docstring)."""
    if method not in data or "erm" not in data:
        raise ValueError(f"the sweep needs finished '{method}' and 'erm' groups; found {sorted(data)}")
    gain = paired_difference(data[method]["ood_accuracy"], data["erm"]["ood_accuracy"])
    lcs_erm = mean_ci(data["erm"]["lcs"].values())
    lcs_method = mean_ci(data[method]["lcs"].values())
    shortcut = {}
    for metric in SHORTCUT_METRICS:
        mine, erm = data[method].get(metric, {}), data["erm"].get(metric, {})
        if mine and erm:
            d = paired_difference(mine, erm)
            shortcut[metric] = {
                method: mean_ci(mine.values()).to_json(),
                "erm": mean_ci(erm.values()).to_json(),
                "difference": d.to_json(),
                "verdict": _verdict(d, higher_is_better=False),
                "p": paired_p_value(d),
            }
    vs = {}
    for other in sorted(g for g in data if g != method):
        vs[other] = {}
        for metric, higher in (("ood_accuracy", True), ("id_accuracy", True), ("lcs", False)):
            d = paired_difference(data[method][metric], data[other][metric])
            vs[other][metric] = {
                **d.to_json(),
                "verdict": _verdict(d, higher_is_better=higher),
                "p": paired_p_value(d),
            }
    lcs_diff = paired_difference(data[method]["lcs"], data["erm"]["lcs"])
    permutation = {g: mean_ci(data[g].get("lcs_permutation", {}).values()).mean for g in ("erm", method)}
    return {
        "method": method,
        "ood_gain_over_erm": {
            **gain.to_json(),
            "points": None if gain.mean is None else 100 * gain.mean,
            "paper_points": PAPER_OOD_GAIN_POINTS,
            "verdict": _verdict(gain),
            "p": paired_p_value(gain),
        },
        "lcs": {
            "erm": lcs_erm.to_json(),
            method: lcs_method.to_json(),
            "ratio_erm_over_method": (
                lcs_erm.mean / lcs_method.mean if lcs_erm.mean and lcs_method.mean else None
            ),
            "paper": {"erm": PAPER_LCS_ERM, "iga": PAPER_LCS_IGA, "ratio": PAPER_LCS_ERM / PAPER_LCS_IGA},
            # mean permutation baseline of each group's runs (None when the runs did not record one)
            "permutation": permutation,
            "verdict": _verdict(lcs_diff, higher_is_better=False),
            "p": paired_p_value(lcs_diff),
        },
        "shortcut": shortcut,
        "versus": vs,
    }


def _pm(d: Mapping[str, Any], scale: float = 100.0, digits: int = 1) -> str:
    if d.get("mean") is None:
        return "–"
    hw = d.get("ci95")
    text = f"{scale * d['mean']:+.{digits}f}"
    return text + (f" ± {scale * hw:.{digits}f}" if hw is not None else "") + f" (n={d['n']})"


def render_claims(claims: Mapping[str, Any]) -> str:
    m = claims["method"]
    gain, lcs = claims["ood_gain_over_erm"], claims["lcs"]
    ratio = lcs["ratio_erm_over_method"]
    lines = [
        f"# Claims check: `{m}` against the paper (paired over seeds, 95% Student-t intervals)",
        "",
        "Generated by `python studies/claims.py` from the sweep's finished jobs; do not edit by hand.",
        *([f"Runs kept by {claims['model_selection']}."] if claims.get("model_selection") else []),
        "",
        "| claim | paper | here | verdict |",
        "| --- | --- | --- | --- |",
        f"| OOD-surface gain over ERM-SFT (points) | up to +{gain['paper_points']} | {_pm(gain)} | {gain['verdict']} |",
        f"| LCS ERM / {m} (lower LCS = more consistent) | {lcs['paper']['erm']} / {lcs['paper']['iga']} "
        f"(ratio {lcs['paper']['ratio']:.1f}) | {_fmt(lcs['erm']['mean'])} / {_fmt(lcs[m]['mean'])} "
        f"(ratio {'–' if ratio is None else f'{ratio:.2f}'}{_permutation_text(lcs, m)}) | {lcs['verdict']} |",
        *(
            f"| less shortcut reliance than ERM-SFT: {SHORTCUT_LABELS[k]} (points, {m} − ERM) | the mechanism (no number) | "
            f"{_pm(v[m], digits=1).split(' (')[0]} vs {_pm(v['erm'], digits=1).split(' (')[0]}: "
            f"{_pm(v['difference'])} | {v['verdict']} |"
            for k, v in claims.get("shortcut", {}).items()
        ),
        "",
        f"## `{m}` against every other method (difference `{m} − other`)",
        "",
        "| other | OOD-surface (points) | verdict | ID (points) | verdict | LCS | verdict (lower is better) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for other, row in claims["versus"].items():
        lines.append(
            f"| {other} | {_pm(row['ood_accuracy'])} | {row['ood_accuracy']['verdict']} | "
            f"{_pm(row['id_accuracy'])} | {row['id_accuracy']['verdict']} | "
            f"{_pm(row['lcs'], 1.0, 3)} | {row['lcs']['verdict']} |"
        )
    if claims.get("multiple_comparisons"):
        lines += render_multiple_comparisons(claims["multiple_comparisons"])
    if claims.get("settings"):
        lines += render_settings(claims["settings"], method=m)
    return "\n".join(lines) + "\n"


def _permutation_text(lcs: Mapping[str, Any], method: str) -> str:
    perm = lcs.get("permutation") or {}
    if perm.get("erm") is None or perm.get(method) is None:
        return ""
    return f"; rows paired at random: {perm['erm']:.3f} / {perm[method]:.3f}"


def render_multiple_comparisons(mc: Mapping[str, Any]) -> list[str]:
    """The paragraph that says how many tests the verdicts above are, and what survives Holm's correction."""
    one, holm_kept = mc["significant_one_by_one"], mc["significant_after_holm"]
    if not mc["tests"]:
        return [
            "",
            "## Multiple comparisons",
            "",
            "No verdict above is a test yet: each needs two seeds or more.",
        ]
    return [
        "",
        "## Multiple comparisons",
        "",
        f"The verdicts above are {mc['tests']} paired t-tests at the {100 * mc['alpha']:.0f} % level, each read on "
        f"its own; if no method differed from any other, about {mc['expected_by_chance']:.1f} of them would still "
        f'read "better" or "worse". {len(one)} do'
        + (f" ({'; '.join(one)})" if one else "")
        + f". Holm's step-down correction over all {mc['tests']} (family-wise level {100 * mc['alpha']:.0f} %) "
        f"keeps {len(holm_kept)}" + (f": {'; '.join(holm_kept)}." if holm_kept else "."),
    ]


def _means(cell: Mapping[str, Any] | None, method: str, baseline: str) -> str:
    if not cell:
        return "–"
    a, b = cell[method]["mean"], cell[baseline]["mean"]
    return f"{100 * a:.1f} / {100 * b:.1f}"


def render_settings(rows: Sequence[Mapping[str, Any]], *, method: str, baseline: str = "erm") -> list[str]:
    """Markdown lines of :func:`same_setting_comparison`: per setting, both means and the paired difference."""
    lines = [
        "",
        f"## `{method}` − {baseline} under the same data setting (main comparison and ablations both ran)",
        "",
        f"Groups `{method}:S` and `{baseline}:S` of the sweep share their data (cue strength, training domains), so "
        "their difference is paired per seed; a setting's own numbers are not comparable across settings (other "
        "training domains, other cues).",
        "",
        f"| setting | OOD-surface % {method} / {baseline} | difference (points) | cue gain {method} / {baseline} "
        f"| difference (points, lower = fewer shortcuts) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        ood, cue = row.get("ood_accuracy"), row.get("cue_gain")
        lines.append(
            f"| {row['setting']} | {_means(ood, method, baseline)} | "
            f"{_pm(ood['difference']) + ' — ' + ood['verdict'] if ood else '–'} | "
            f"{_means(cue, method, baseline)} | {_pm(cue['difference']) + ' — ' + cue['verdict'] if cue else '–'} |"
        )
    return lines


SHORTCUT_LABELS = {
    "cue_gain": "cue gain (val with − without cues)",
    "cue_excess_follow": "wrong cue followed, shown − hidden",
}


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from iga.utils.io import atomic_write_json, atomic_write_text

    parser = argparse.ArgumentParser(description="Check the paper's claims against a sweep folder.")
    parser.add_argument("sweep_dir")
    parser.add_argument("--out", default=None, help="claims.md path (claims.json beside it)")
    parser.add_argument("--method", default="iga")
    parser.add_argument(
        "--select",
        default="val",
        help="model-selection rule: val (default), val_nocue, lodo or test (oracle)",
    )
    args = parser.parse_args(argv)
    kept = _kept_runs(args.sweep_dir, args.select)  # read once: the main comparison, then every group
    claims = check_claims(_per_seed(r for r in kept if r.ablation is None), method=args.method)
    claims["settings"] = same_setting_comparison(_per_seed(kept), method=args.method)
    claims["multiple_comparisons"] = multiple_comparisons(claims)
    claims["model_selection"] = selection_line(args.select)
    text = render_claims(claims)
    if args.out:
        out = Path(args.out)
        atomic_write_text(out, text)
        atomic_write_json(out.with_suffix(".json"), claims)
    print(text)
    return claims


if __name__ == "__main__":
    main()
