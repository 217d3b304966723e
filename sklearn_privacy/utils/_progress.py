"""Progress reporting: the tqdm bar of long fits and the step reporter of long jobs.

- :func:`progress_bar`: one tqdm bar over the epochs of a fit (shown with ``verbose``).
- :class:`StepProgress`: one line per step of a job (a fold, a protector, an attacker)
  with the elapsed time and an estimate of the time left, formatted like tqdm's
  (:meth:`tqdm.tqdm.format_interval`).
"""

import time

from tqdm.auto import tqdm

__all__ = ["StepProgress", "progress_bar"]


def progress_bar(total, *, desc, verbose, unit="epoch"):
    """The one progress bar of the library: tqdm, shown only when ``verbose`` is true.

    Use it as a context manager (it closes itself) and advance it by one per epoch, or
    hand it to :class:`~sklearn_privacy.utils._torch.EpochProgress` in a skorch net.
    """
    return tqdm(total=total, disable=not verbose, desc=desc, unit=unit)


class StepProgress:
    """Print each step of a job with the elapsed time and the estimated time left.

    The estimate is the mean duration of the steps done so far times the steps left
    (steps may weigh more than one, e.g. a step that fits several models).

    Parameters
    ----------
    total : float
        Total weight of all steps.
    desc : str
        Prefix of every line, e.g. the job's name.
    verbose : bool or int
        Print only when true.
    clock : callable, default=time.perf_counter
        Returns the current time in seconds (a fake clock makes the output
        deterministic).
    file : file-like, default=None
        Where to print; standard output when None.

    Attributes
    ----------
    done : float
        Weight of the steps finished so far.
    lines : list of str
        Every line reported (also when ``verbose`` is false).
    """

    def __init__(self, total, *, desc, verbose=True, clock=time.perf_counter, file=None):
        if not total > 0:
            raise ValueError(f"total must be positive; got {total!r}.")
        self.total = float(total)
        self.desc = desc
        self.verbose = verbose
        self.clock = clock
        self.file = file
        self.done = 0.0
        self.lines = []
        self._start = clock()

    def eta(self):
        """Estimated seconds left, or None before the first step is done."""
        if self.done <= 0:
            return None
        elapsed = self.clock() - self._start
        return elapsed / self.done * max(self.total - self.done, 0.0)

    def step(self, message, weight=1):
        """Report that the step ``message`` starts, with its weight counted as done after.

        The line shows the steps done so far, the elapsed time and the estimated time
        left (``?`` before any step is done); call :meth:`finish` after the last step.
        """
        self._report(message)
        self.done += weight

    def complete(self, message, weight=1):
        """Report that the step ``message`` has just finished, counting its weight first.

        For steps that run in parallel and are reported in the order they finish.
        """
        self.done += weight
        self._report(message)

    def finish(self, message="done"):
        """Report the end of the job with its total time."""
        self.done = self.total
        self._report(message)

    def _report(self, message):
        elapsed = self.clock() - self._start
        eta = self.eta()
        left = "?" if eta is None else tqdm.format_interval(eta)
        line = (f"[{self.desc}] {self.done:g}/{self.total:g} "
                f"{tqdm.format_interval(elapsed)} elapsed, {left} left: {message}")
        self.lines.append(line)
        if self.verbose:
            print(line, file=self.file, flush=True)
