"""Privacy-utility plot in the style of scikit-learn's Display API."""

import numpy as np
import pandas as pd

from ..model_selection import pareto_front
from ..utils.cv_results import check_cv_results, cv_results_column

__all__ = ["PrivacyUtilityDisplay"]


def _as_tuple(value, name, allowed=None):
    values = (value,) if isinstance(value, str) else tuple(value)
    if not values:
        raise ValueError(f"{name} must name at least one entry; got {value!r}.")
    if allowed is not None and set(values) - set(allowed):
        raise ValueError(f"{name} must be among {sorted(allowed)}; got {value!r}.")
    return values


def _params_label(params):
    return ", ".join(f"{key.rsplit('__', 1)[-1]}={value!r}" for key, value in params.items())


class PrivacyUtilityDisplay:
    """Privacy-utility trade-off: every candidate with its spread, and the frontier.

    Build it with :meth:`from_cv_results` (a search's ``cv_results_``) or
    :meth:`from_estimator` (fitted pipelines scored on held-out data); both plot at
    once. All parameters are stored as attributes.

    Parameters
    ----------
    utility : array-like of shape (n_points,)
        Utility of each point (x axis), e.g. the app's macro-F1.
    privacy : array-like of shape (n_points,)
        Privacy of each point (y axis), ``1 - attacker advantage``.
    utility_std : array-like of shape (n_points,), default=None
        Spread of the utility (standard deviation over folds); horizontal error bars.
    privacy_std : array-like of shape (n_points,), default=None
        Spread of the privacy; vertical error bars.
    labels : list of str, default=None
        Name of each point (e.g. the candidate's parameters), used for annotations.
    utility_label : str, default="activity macro-F1"
        x-axis label.
    privacy_label : str, default="privacy (1 - attacker advantage)"
        y-axis label.

    Attributes
    ----------
    ax_ : matplotlib Axes
        Axes with the plot.
    figure_ : matplotlib Figure
        Figure containing the plot.
    errorbar_ : matplotlib ErrorbarContainer
        All points with their error bars.
    line_ : matplotlib Line2D
        The Pareto frontier, drawn as a step line (the boundary of what the frontier
        points dominate).
    frontier_ : ndarray of int
        Positions of the frontier points, by increasing utility.
    annotations_ : list of matplotlib Annotation
        The labels written next to the points (frontier points by default, every point
        with ``annotate="all"``).
    chance_line_ : matplotlib Line2D or None
        The horizontal line of an attacker at chance, when ``chance`` is given.
    chosen_ : matplotlib Line2D or None
        The marker of the chosen point, when ``chosen`` is given.
    panels_ : list of PrivacyUtilityDisplay
        Only after :meth:`from_report` with several panels: the display of each panel.
    axes_ : ndarray of matplotlib Axes
        Only with ``panels_``: their axes, attackers in rows and levels in columns.

    See Also
    --------
    pareto_front : The frontier as a table.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn_privacy.evaluation import PrivacyUtilityDisplay
    >>> results = {"mean_test_utility": [0.9, 0.8, 0.6], "std_test_utility": [0.01] * 3,
    ...            "mean_test_privacy": [0.2, 0.5, 0.9], "std_test_privacy": [0.05] * 3,
    ...            "params": [{"sigma": 0.1}, {"sigma": 0.5}, {"sigma": 1.0}]}
    >>> display = PrivacyUtilityDisplay.from_cv_results(results)
    >>> display.frontier_.tolist()
    [2, 1, 0]
    """

    def __init__(
        self,
        *,
        utility,
        privacy,
        utility_std=None,
        privacy_std=None,
        labels=None,
        utility_label="activity macro-F1",
        privacy_label="privacy (1 - attacker advantage)",
    ):
        self.utility = utility
        self.privacy = privacy
        self.utility_std = utility_std
        self.privacy_std = privacy_std
        self.labels = labels
        self.utility_label = utility_label
        self.privacy_label = privacy_label

    def _checked(self):
        utility = np.asarray(self.utility, dtype=np.float64).ravel()
        privacy = np.asarray(self.privacy, dtype=np.float64).ravel()
        if utility.shape != privacy.shape or utility.size == 0:
            raise ValueError(
                f"utility and privacy must be non-empty and of equal length; got "
                f"{utility.shape} and {privacy.shape}."
            )
        stds = []
        for name, std in (("utility_std", self.utility_std), ("privacy_std", self.privacy_std)):
            if std is not None:
                std = np.asarray(std, dtype=np.float64).ravel()
                if std.shape != utility.shape:
                    raise ValueError(f"{name} must have {utility.size} values; got {std.shape}.")
            stds.append(std)
        if self.labels is not None and len(self.labels) != utility.size:
            raise ValueError(f"labels must have {utility.size} entries; got {len(self.labels)}.")
        return utility, privacy, stds[0], stds[1]

    def plot(self, ax=None, *, annotate=True, chance=None, chosen=None, errorbar_kw=None,
             frontier_kw=None):
        """Plot the points and the frontier.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when None.
        annotate : bool or {"frontier", "all"}, default=True
            Write point labels (when ``labels`` is set): ``True`` or ``"frontier"``
            labels the frontier points, ``"all"`` every point, ``False`` none.
        chance : float, default=None
            Privacy of an attacker at chance (``1.0`` for ``1 - advantage``): drawn as
            a dashed horizontal line when given.
        chosen : int, default=None
            Position of the chosen point (e.g. by a refit rule), marked with a star.
        errorbar_kw : dict, default=None
            Keyword arguments for :meth:`matplotlib.axes.Axes.errorbar`.
        frontier_kw : dict, default=None
            Keyword arguments for the frontier's :meth:`matplotlib.axes.Axes.step`.

        Returns
        -------
        display : PrivacyUtilityDisplay
            With ``ax_``, ``figure_``, ``errorbar_``, ``line_``, ``frontier_``,
            ``annotations_``, ``chance_line_`` and ``chosen_`` set.
        """
        import matplotlib.pyplot as plt

        utility, privacy, utility_std, privacy_std = self._checked()
        if annotate not in (True, False, "frontier", "all"):
            raise ValueError(
                f"annotate must be True, False, 'frontier' or 'all'; got {annotate!r}."
            )
        if chosen is not None and not (
            isinstance(chosen, (int, np.integer)) and 0 <= chosen < utility.size
        ):
            raise ValueError(
                f"chosen must be a point position in [0, {utility.size}); got {chosen!r}."
            )
        if ax is None:
            _, ax = plt.subplots()
        errorbar_kw = {"fmt": "o", "capsize": 3, "alpha": 0.8, "label": "candidates",
                       **(errorbar_kw or {})}
        self.errorbar_ = ax.errorbar(utility, privacy, xerr=utility_std, yerr=privacy_std,
                                     **errorbar_kw)
        front = pareto_front(
            pd.DataFrame({"utility": utility, "privacy": privacy}), x="utility", y="privacy"
        )
        self.frontier_ = front.index.to_numpy()
        frontier_kw = {"where": "pre", "color": "black", "linewidth": 1.5,
                       "label": "Pareto frontier", **(frontier_kw or {})}
        (self.line_,) = ax.step(utility[self.frontier_], privacy[self.frontier_], **frontier_kw)
        self.chance_line_ = None
        if chance is not None:
            self.chance_line_ = ax.axhline(float(chance), color="grey", linestyle="--",
                                           linewidth=1, label="attacker at chance")
        self.chosen_ = None
        if chosen is not None:
            (self.chosen_,) = ax.plot(
                [utility[chosen]], [privacy[chosen]], marker="*", markersize=16,
                linestyle="none", color="tab:red", label="chosen",
            )
        self.annotations_ = []
        if annotate and self.labels is not None:
            points = range(utility.size) if annotate == "all" else self.frontier_
            for i in points:
                self.annotations_.append(
                    ax.annotate(str(self.labels[i]), (utility[i], privacy[i]),
                                textcoords="offset points", xytext=(4, 4), fontsize="small")
                )
        ax.set_xlabel(self.utility_label)
        ax.set_ylabel(self.privacy_label)
        ax.legend(loc="best")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_cv_results(
        cls,
        cv_results,
        *,
        utility="utility",
        privacy="privacy",
        labels=None,
        ax=None,
        utility_label="activity macro-F1",
        privacy_label="privacy (1 - attacker advantage)",
        **plot_kwargs,
    ):
        """Plot the candidates of a search (mean and std over folds).

        Parameters
        ----------
        cv_results : dict or DataFrame
            ``cv_results_`` of a search scored with a dict holding ``utility`` and
            ``privacy`` scorers.
        utility, privacy : str, default="utility", "privacy"
            Scorer names (``mean_test_<name>`` and ``std_test_<name>`` are read) or
            column names.
        labels : list of str, default=None
            Point names; by default each candidate's parameters (``sigma=0.5``).
        ax : matplotlib Axes, default=None
            Axes to draw on.
        utility_label, privacy_label : str
            Axis labels.
        **plot_kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : PrivacyUtilityDisplay
        """
        frame = check_cv_results(cv_results)
        ucol, pcol = cv_results_column(frame, utility), cv_results_column(frame, privacy)

        def std_of(col):
            name = col.replace("mean_", "std_", 1) if col.startswith("mean_") else None
            return frame[name].to_numpy(dtype=np.float64) if name in frame.columns else None

        if labels is None and "params" in frame.columns:
            labels = [_params_label(p) for p in frame["params"]]
        display = cls(
            utility=frame[ucol].to_numpy(dtype=np.float64),
            privacy=frame[pcol].to_numpy(dtype=np.float64),
            utility_std=std_of(ucol),
            privacy_std=std_of(pcol),
            labels=labels,
            utility_label=utility_label,
            privacy_label=privacy_label,
        )
        return display.plot(ax=ax, **plot_kwargs)

    @classmethod
    def from_report(
        cls,
        report,
        *,
        utility_metric="activity_macro_f1",
        app="best",
        privacy_metric=None,
        attacker="worst",
        mode="adaptive",
        level="window",
        chosen=None,
        ax=None,
        utility_label="activity macro-F1",
        privacy_label=None,
        **plot_kwargs,
    ):
        """Plot the protectors of a :func:`privacy_utility_report` (one point each).

        Privacy is ``1 - advantage`` of the chosen attacker, mode and level; error bars
        are the standard deviations over folds. Every point is labelled with its
        protector and the line of an attacker at chance (privacy 1) is drawn. With
        several attackers or levels, one panel is drawn for each (attackers in rows,
        levels in columns).

        Parameters
        ----------
        report : DataFrame or list of dict
            Records with the ``RECORD_KEYS`` columns.
        utility_metric : str, default="activity_macro_f1"
            Metric read for the x axis.
        app : str, default="best"
            App of the utility rows (``attacker`` column): ``"best"`` is the strongest
            app; reports written before apps were named have none (None).
        privacy_metric : str, default=None
            Advantage metric read for the y axis; by default the report's one metric
            ending in ``"_advantage"``.
        attacker : str or list of str, default="worst"
            Attacker(s): ``"worst"`` is the worst case over the report's attackers; a
            list draws one panel per attacker.
        mode : {"adaptive", "static"}, default="adaptive"
            Attacker retrained on protected data, or trained on raw data.
        level : {"window", "recording"} or tuple of them, default="window"
            Attack level(s); ``("window", "recording")`` draws two panels.
        chosen : str or callable, default=None
            The point to mark: a protector name, or a refit rule such as
            :func:`~sklearn_privacy.model_selection.best_utility_with_privacy_floor`,
            called with ``mean_test_utility`` and ``mean_test_privacy`` columns (in
            each panel).
        ax : matplotlib Axes or array of Axes, default=None
            Axes to draw on, one per panel; a new figure when None.
        utility_label : str, default="activity macro-F1"
        privacy_label : str, default=None
            Defaults to ``"privacy (1 - advantage), <mode> <attacker>, <level>"``.
        **plot_kwargs
            Passed to :meth:`plot` (``annotate`` defaults to ``"all"`` and ``chance``
            to 1).

        Returns
        -------
        display : PrivacyUtilityDisplay
            The display of the first panel; with several panels, ``panels_`` holds the
            display of each panel and ``axes_`` their axes (attackers x levels).
        """
        import matplotlib.pyplot as plt

        frame = pd.DataFrame(report)
        if privacy_metric is None:
            found = sorted({m for m in frame["metric"].dropna().unique()
                            if str(m).endswith("_advantage")})
            if len(found) != 1:
                raise ValueError(
                    f"the report has the advantage metrics {found}; name one with "
                    "privacy_metric."
                )
            privacy_metric = found[0]
        attackers = _as_tuple(attacker, "attacker")
        levels = _as_tuple(level, "level", {"window", "recording"})
        util = frame[frame["metric"] == utility_metric]
        if app is None or (util["attacker"].isna().all() and app == "best"):
            util = util[util["attacker"].isna()]
        else:
            util = util[util["attacker"] == app]
        util = util.set_index("protector")
        n_rows, n_cols = len(attackers), len(levels)
        if ax is None:
            _, ax = plt.subplots(n_rows, n_cols, figsize=(6 * n_cols, 4.5 * n_rows),
                                 squeeze=False)
        axes = np.asarray(ax, dtype=object).reshape(-1)
        if axes.size != n_rows * n_cols:
            raise ValueError(
                f"ax must hold {n_rows * n_cols} axes (attackers x levels); got {axes.size}."
            )
        plot_kwargs = {"annotate": "all", "chance": 1.0, **plot_kwargs}
        panels = []
        for k, (att, lev) in enumerate((a, v) for a in attackers for v in levels):
            priv = frame[
                (frame["metric"] == privacy_metric)
                & (frame["attacker"] == att)
                & (frame["mode"] == mode)
                & (frame["level"] == lev)
            ].set_index("protector")
            names = [name for name in util.index if name in priv.index]
            if not names:
                raise ValueError(
                    f"the report has no protector with both {utility_metric!r} (app={app!r}) "
                    f"and {privacy_metric!r} for attacker={att!r}, mode={mode!r}, "
                    f"level={lev!r}."
                )
            utility = util.loc[names, "value"].to_numpy(dtype=np.float64)
            privacy = 1.0 - priv.loc[names, "value"].to_numpy(dtype=np.float64)
            display = cls(
                utility=utility,
                privacy=privacy,
                utility_std=util.loc[names, "std"].to_numpy(dtype=np.float64),
                privacy_std=priv.loc[names, "std"].to_numpy(dtype=np.float64),
                labels=names,
                utility_label=utility_label,
                privacy_label=privacy_label
                or f"privacy (1 - advantage), {mode} {att}, {lev}",
            )
            display.plot(ax=axes[k], chosen=cls._chosen_index(chosen, names, utility, privacy),
                         **plot_kwargs)
            panels.append(display)
        first = panels[0]
        if len(panels) > 1:
            first.panels_ = panels
            first.axes_ = axes.reshape(n_rows, n_cols)
        return first

    @staticmethod
    def _chosen_index(chosen, names, utility, privacy):
        if chosen is None:
            return None
        if isinstance(chosen, str):
            if chosen not in names:
                raise ValueError(f"chosen={chosen!r} is not a protector of the plot: {names}.")
            return names.index(chosen)
        if callable(chosen):
            index = chosen({"mean_test_utility": utility, "mean_test_privacy": privacy})
            return int(index)
        raise ValueError(
            f"chosen must be a protector name or a refit rule (callable); got {chosen!r}."
        )

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y,
        *,
        sensitive_features,
        groups=None,
        utility_scoring=None,
        privacy_scoring=None,
        labels=None,
        ax=None,
        utility_label="activity macro-F1",
        privacy_label="privacy (1 - attacker advantage)",
        **plot_kwargs,
    ):
        """Score fitted pipelines on held-out data and plot them.

        Parameters
        ----------
        estimator : fitted estimator, list of them, or dict name -> fitted estimator
            Protector pipelines ending with the app.
        X, y : array-like
            Held-out samples (people or recordings the pipelines never saw) and task
            labels.
        sensitive_features : array-like
            Sensitive labels of ``X``.
        groups : array-like, default=None
            Recording ids or (subject, recording) pairs of ``X``, for the privacy scorer.
        utility_scoring : callable, default=None
            Utility scorer; :func:`~sklearn_privacy.metrics.utility_scorer` by default.
        privacy_scoring : PrivacyScorer, default=None
            By default ``PrivacyScorer()``. Its inner splits give the privacy error bars.
        labels : list of str, default=None
            Point names; dict keys, or the estimators' class names.
        ax : matplotlib Axes, default=None
            Axes to draw on.
        utility_label, privacy_label : str
            Axis labels.
        **plot_kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : PrivacyUtilityDisplay
        """
        from ..metrics import PrivacyScorer, utility_scorer

        if isinstance(estimator, dict):
            names, estimators = list(estimator), list(estimator.values())
        elif isinstance(estimator, (list, tuple)):
            estimators = list(estimator)
            names = [type(est).__name__ for est in estimators]
        else:
            estimators, names = [estimator], [type(estimator).__name__]
        labels = names if labels is None else labels
        utility_scoring = utility_scorer() if utility_scoring is None else utility_scoring
        privacy_scoring = PrivacyScorer() if privacy_scoring is None else privacy_scoring
        level = getattr(privacy_scoring, "level", "window")
        utilities, privacies, privacy_stds = [], [], []
        for est in estimators:
            utilities.append(float(utility_scoring(est, X, y)))
            if hasattr(privacy_scoring, "evaluate"):
                summary = privacy_scoring.evaluate(
                    est, X, y, sensitive_features=sensitive_features, groups=groups,
                    levels=(level,),
                )[level]
                privacies.append(summary["privacy"])
                privacy_stds.append(summary["advantage_std"])
            else:
                privacies.append(float(privacy_scoring(
                    est, X, y, sensitive_features=sensitive_features, groups=groups)))
                privacy_stds.append(0.0)
        display = cls(
            utility=utilities,
            privacy=privacies,
            privacy_std=privacy_stds,
            labels=labels,
            utility_label=utility_label,
            privacy_label=privacy_label,
        )
        return display.plot(ax=ax, **plot_kwargs)
