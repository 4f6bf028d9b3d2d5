"""Subgroup pooling: :func:`pool_subgroups` and its immutable :class:`SubgroupPool`.

As ``meta::metaprop(..., subgroup = g)`` by default: every subgroup is pooled on its own,
with its own τ² (no common τ² across subgroups), and the subgroups are compared by the
between-subgroup Q, the fixed-effect (inverse-variance) test on the subgroup estimates
``theta_j`` with their standard errors ``se_j`` from the subgroup fits:

    Q_between = sum_j w_j (theta_j - theta_bar)^2,  w_j = 1/se_j^2,
    theta_bar = sum_j w_j theta_j / sum_j w_j,

on J - 1 degrees of freedom (J the number of pooled subgroups; Borenstein et al. 2009,
*Introduction to Meta-Analysis*, ch. 19; Cochrane Handbook 10.11.3.1). This is the test
metafor gives when the subgroup estimates are themselves pooled with
``rma(yi = theta, sei = se, method = "EE")`` (its ``QE``). The one implementation is
:func:`metaresp.analysis.difference_test`, shared with ``metaresp pool --by`` and the plan's
analyses. A subgroup of one study is shown, not pooled, and left out of the test (as the
analyses do); the notes say so.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from metaresp import models
from metaresp.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from metaresp.pooling import PoolResult

__all__ = ["SubgroupPool", "pool_subgroups"]

_MODEL_KEYS = frozenset({"transform", "estimator", "ci", "level", "nagq", "tau_prior", "mu_prior"})


@dataclass(frozen=True)
class SubgroupPool:
    """Pooled subgroups (immutable), in the order the subgroups first appear.

    ``results[name]`` is the subgroup's :class:`~metaresp.PoolResult`, or ``None`` for a
    subgroup of one study (shown, not pooled). ``q_between``, ``df_between`` and
    ``p_between`` are the test for subgroup differences (``None`` with fewer than two
    pooled subgroups); ``overall`` pools every study together with the same settings.
    """

    names: tuple[str, ...]
    results: tuple[PoolResult | None, ...]
    overall: PoolResult
    q_between: float | None
    df_between: int | None
    p_between: float | None
    #: the subgroups the test compared (pooled ones, k >= 2)
    tested: tuple[str, ...]
    notes: tuple[str, ...]
    #: the labels of each subgroup's studies (also for single-study subgroups)
    members: tuple[tuple[str, ...], ...]
    counts: tuple[tuple[tuple[int, int], ...], ...]

    def __getitem__(self, name: str) -> PoolResult | None:
        try:
            return self.results[self.names.index(name)]
        except ValueError:
            raise KeyError(f"no subgroup {name!r}; subgroups: {', '.join(self.names)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def to_frame(self) -> pd.DataFrame:
        """One row per subgroup, then ``overall``: ``subgroup, k, events, total,
        proportion, ci_low, ci_high, pi_low, pi_high, tau2, i2, q, q_pvalue, pooled``
        (a single-study subgroup shows its study's proportion and exact CI)."""
        import pandas as pd

        from metaresp.intervals import clopper_pearson

        rows: list[dict[str, Any]] = []
        for name, res, counts in zip(self.names, self.results, self.counts, strict=True):
            if res is None:
                (x, n), level = counts[0], self.overall.level
                low, high = clopper_pearson([x], [n], level)
                rows.append(
                    {
                        "subgroup": name,
                        "k": 1,
                        "events": x,
                        "total": n,
                        "proportion": x / n,
                        "ci_low": float(low[0]),
                        "ci_high": float(high[0]),
                        "pooled": False,
                    }
                )
            else:
                rows.append(_frame_row(name, res))
        rows.append(_frame_row("overall", self.overall))
        columns = [
            "subgroup",
            "k",
            "events",
            "total",
            "proportion",
            "ci_low",
            "ci_high",
            "pi_low",
            "pi_high",
            "tau2",
            "i2",
            "q",
            "q_pvalue",
            "pooled",
        ]
        return pd.DataFrame(rows, columns=columns)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every subgroup's ``PoolResult.to_dict()`` (``None`` for a single
        study), the overall pool and the test."""
        return {
            "subgroups": [
                {"name": name, "labels": list(labels), "result": None if r is None else r.to_dict()}
                for name, labels, r in zip(self.names, self.members, self.results, strict=True)
            ],
            "overall": self.overall.to_dict(),
            "test": {
                "q_between": self.q_between,
                "df": self.df_between,
                "pvalue": self.p_between,
                "subgroups": list(self.tested),
            },
            "notes": list(self.notes),
        }

    def summary(self) -> str:
        """Text as ``metaprop`` prints subgroups: each subgroup's pooled lines, the overall
        pool and the test for subgroup differences."""
        from metaresp import formatting as fmt
        from metaresp import resulttext

        lines = [
            f"Subgroups pooled separately (each with its own τ²): {self.overall.fitted.describe()}"
        ]
        for name, res, counts in zip(self.names, self.results, self.counts, strict=True):
            lines.append("")
            if res is None:
                x, n = counts[0]
                lines.append(f"{name}: one study ({fmt.counts(x, n)}), shown, not pooled")
                continue
            lines.append(f"{name}: k = {res.k}, {fmt.counts(sum(res.events), sum(res.totals))}")
            lines.extend(resulttext.fallback_lines(res, style="python"))
            lines.extend(f"  {line}" for line in resulttext.result_lines(res))
        lines.append("")
        o = self.overall
        lines.append(f"overall: k = {o.k}, {fmt.counts(sum(o.events), sum(o.totals))}")
        lines.extend(f"  {line}" for line in resulttext.result_lines(o))
        lines.append("")
        lines.append(
            "test for subgroup differences (fixed-effect test on the subgroup estimates): "
            + fmt.subgroup_test(self.q_between, self.df_between, self.p_between)
        )
        lines.extend(self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _frame_row(name: str, res: PoolResult) -> dict[str, Any]:
    return {
        "subgroup": name,
        "k": res.k,
        "events": sum(res.events),
        "total": sum(res.totals),
        "proportion": res.proportion,
        "ci_low": res.ci_low,
        "ci_high": res.ci_high,
        "pi_low": res.pi_low,
        "pi_high": res.pi_high,
        "tau2": res.tau2,
        "i2": res.i2,
        "q": res.q,
        "q_pvalue": res.q_pvalue,
        "pooled": True,
    }


def pool_subgroups(
    events: Sequence[int],
    totals: Sequence[int],
    groups: Sequence[Any],
    *,
    labels: Sequence[str] | None = None,
    **pool_kwargs: Any,
) -> SubgroupPool:
    """Pool ``events/totals`` within each subgroup of ``groups`` (one value per study) and
    test the subgroup differences; ``pool_kwargs`` are those of :func:`metaresp.pool`
    (``transform``, ``estimator``, ``ci``, ``level``, ``nagq``, ``tau_prior``,
    ``mu_prior``), used for every subgroup and the overall pool.

    Raises :class:`~metaresp.errors.InputError` (a ``ValueError``) for unknown keyword
    arguments, bad model options, bad counts (as :func:`metaresp.pool`), a ``groups`` of
    another length or a missing subgroup value.
    """
    import warnings

    from metaresp._inputs import validate_counts
    from metaresp.analysis import Record, pool_groups
    from metaresp.errors import StatisticalWarning
    from metaresp.pooling import pool

    unknown = sorted(set(pool_kwargs) - _MODEL_KEYS)
    problems: list[str] = [
        f"{key}: not an argument of pool_subgroups; allowed: {', '.join(sorted(_MODEL_KEYS))}"
        for key in unknown
    ]
    kwargs = {k: v for k, v in pool_kwargs.items() if k in _MODEL_KEYS}
    estimator = kwargs.get("estimator", models.DEFAULT_ESTIMATOR)
    if kwargs.get("ci") is None and isinstance(estimator, str):
        kwargs["ci"] = models.default_ci(estimator)
    problems.extend(
        models.model_problems(
            kwargs.get("transform", models.DEFAULT_TRANSFORM),
            estimator,
            kwargs["ci"],
            kwargs.get("level", models.DEFAULT_LEVEL),
            kwargs.get("nagq", models.DEFAULT_NAGQ),
        )
    )
    xi, ni, labs = validate_counts(events, totals, labels, problems)
    group_list = list(groups) if not isinstance(groups, str) else [groups]
    if len(group_list) != len(xi) and not problems:
        problems.append(
            f"groups: {len(group_list)} values for {len(xi)} studies; give one subgroup per study"
        )
    names: list[str] = []
    for i, g in enumerate(group_list):
        if g is None or (isinstance(g, float) and g != g) or not str(g).strip():
            problems.append(
                f"groups: study {i + 1} ({labs[i] if i < len(labs) else i}) has no subgroup"
            )
        else:
            names.append(str(g).strip())
    if problems:
        raise InputError(problems)
    spec = models.ModelSpec(
        transform=kwargs.get("transform", models.DEFAULT_TRANSFORM),
        estimator=estimator,
        ci=kwargs["ci"],
        level=float(kwargs.get("level", models.DEFAULT_LEVEL)),
        nagq=int(kwargs.get("nagq", models.DEFAULT_NAGQ)),
        tau_prior=kwargs.get("tau_prior"),
        mu_prior=kwargs.get("mu_prior"),
    )
    records: dict[str, list[Record]] = {}
    for i, name in enumerate(names):
        rid = f"study-{i + 1}"
        records.setdefault(name, []).append(
            Record(
                record_id=rid,
                study=labs[i],
                group_id=rid,
                group=name,
                cohort=rid,
                outcome="",
                population="",
                setting="",
                unit="",
                events=int(xi[i]),
                total=int(ni[i]),
                label=labs[i],
            )
        )
    pooled = pool_groups(records, spec, overall=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        overall = pool(xi, ni, labels=labs, **spec.as_kwargs())
    test = pooled.test
    return SubgroupPool(
        names=tuple(g.name for g in pooled.groups),
        results=tuple(g.result for g in pooled.groups),
        overall=overall,
        q_between=None if test is None else test.q,
        df_between=None if test is None else test.df,
        p_between=None if test is None else test.pvalue,
        tested=() if test is None else test.subgroups,
        notes=pooled.notes,
        members=tuple(tuple(r.label for r in g.records) for g in pooled.groups),
        counts=tuple(
            tuple((r.events or 0, r.total or 0) for r in g.records) for g in pooled.groups
        ),
    )
