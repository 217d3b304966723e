"""Privacy-utility plot in the style of scikit-learn's Display API."""

import numpy as np
import pandas as pd

from ._search import _column, _results_frame, pareto_front

__all__ = ["PrivacyUtilityDisplay"]


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
        The labels written next to frontier points.

    See Also
    --------
    pareto_front : The frontier as a table.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn_privacy.model_selection import PrivacyUtilityDisplay
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

    def plot(self, ax=None, *, annotate=True, errorbar_kw=None, frontier_kw=None):
        """Plot the points and the frontier.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure when None.
        annotate : bool, default=True
            Write the label of each frontier point beside it (when ``labels`` is set).
        errorbar_kw : dict, default=None
            Keyword arguments for :meth:`matplotlib.axes.Axes.errorbar`.
        frontier_kw : dict, default=None
            Keyword arguments for the frontier's :meth:`matplotlib.axes.Axes.step`.

        Returns
        -------
        display : PrivacyUtilityDisplay
            With ``ax_``, ``figure_``, ``errorbar_``, ``line_``, ``frontier_`` and
            ``annotations_`` set.
        """
        import matplotlib.pyplot as plt

        utility, privacy, utility_std, privacy_std = self._checked()
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
        self.annotations_ = []
        if annotate and self.labels is not None:
            for i in self.frontier_:
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
        frame = _results_frame(cv_results)
        ucol, pcol = _column(frame, utility), _column(frame, privacy)

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
        privacy_metric="identity_advantage",
        attacker="cnn",
        mode="adaptive",
        level="window",
        ax=None,
        utility_label="activity macro-F1",
        privacy_label=None,
        **plot_kwargs,
    ):
        """Plot the protectors of a :func:`privacy_utility_report` (one point each).

        Privacy is ``1 - advantage`` of the chosen attacker, mode and level; error bars
        are the standard deviations over folds.

        Parameters
        ----------
        report : DataFrame or list of dict
            Records with the ``RECORD_KEYS`` columns.
        utility_metric : str, default="activity_macro_f1"
            Metric read for the x axis (``attacker`` and ``mode`` ignored).
        privacy_metric : str, default="identity_advantage"
            Advantage metric read for the y axis.
        attacker, mode, level : str, default="cnn", "adaptive", "window"
            Which attack the y axis shows.
        ax : matplotlib Axes, default=None
        utility_label : str, default="activity macro-F1"
        privacy_label : str, default=None
            Defaults to ``"privacy (1 - advantage), <mode> <attacker>, <level>"``.
        **plot_kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : PrivacyUtilityDisplay
        """
        frame = pd.DataFrame(report)
        util = frame[frame["metric"] == utility_metric].set_index("protector")
        priv = frame[
            (frame["metric"] == privacy_metric)
            & (frame["attacker"] == attacker)
            & (frame["mode"] == mode)
            & (frame["level"] == level)
        ].set_index("protector")
        names = [name for name in util.index if name in priv.index]
        if not names:
            raise ValueError(
                f"the report has no protector with both {utility_metric!r} and "
                f"{privacy_metric!r} for attacker={attacker!r}, mode={mode!r}, level={level!r}."
            )
        display = cls(
            utility=util.loc[names, "value"].to_numpy(dtype=np.float64),
            privacy=1.0 - priv.loc[names, "value"].to_numpy(dtype=np.float64),
            utility_std=util.loc[names, "std"].to_numpy(dtype=np.float64),
            privacy_std=priv.loc[names, "std"].to_numpy(dtype=np.float64),
            labels=names,
            utility_label=utility_label,
            privacy_label=privacy_label
            or f"privacy (1 - advantage), {mode} {attacker}, {level}",
        )
        return display.plot(ax=ax, **plot_kwargs)

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
