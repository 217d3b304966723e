"""The ``sklearn-privacy`` command.

``sklearn-privacy evaluate motion`` trains the motion protectors on the embedded default
data (HAPT), measures utility (activity macro-F1 on people the app never saw) and privacy
(identity accuracy of adaptive and static attackers on other recordings of the same
people, per window and per recording), prints a table and writes ``report.json``,
``report.md`` and ``frontier.png`` to the output folder.

``sklearn-privacy protect MODEL INPUT OUTPUT`` applies a protector saved with
:func:`~sklearn_privacy.persistence.save_protector` to the windows of a ``.npy`` file,
chunk by chunk, and writes the protected windows to another ``.npy`` file.
"""

import argparse
import sys
import textwrap
import time

__all__ = ["main"]


def _csv(value):
    return [part.strip() for part in value.split(",") if part.strip()]


_MOTION_DESCRIPTION = (
    "Train the motion protectors on the embedded default data (HAPT), measure utility "
    "(activity macro-F1 on people the app never saw) and privacy (identity accuracy of "
    "adaptive and static attackers on other recordings of the same people, per window and "
    "per recording), print a table and write report.json, report.md and frontier.png to "
    "the output folder."
)


_PROTECT_DESCRIPTION = (
    "Load a protector saved with save_protector (no code from the file is run), stream "
    "the windows of INPUT (.npy) through it a chunk at a time and write the protected "
    "windows to OUTPUT (.npy), with a progress bar. Memory use is bounded by the chunk "
    "size, so INPUT may be larger than memory."
)


class _HelpFormatter(argparse.HelpFormatter):
    """Wrap help lines at spaces only, so names such as ``anonymizer-best`` stay whole."""

    def _split_lines(self, text, width):
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def _parser():
    # Only the name tables of the job are read here: they load no numpy, pandas or torch,
    # so ``--help`` and ``--version`` answer at once.
    from . import __version__
    from .evaluation import (
        APPS,
        ATTACKERS,
        CHOOSE_RULES,
        DEFAULT_APPS,
        DEFAULT_ATTACKERS,
        DEFAULT_PROTECTORS,
        PROFILES,
        PROTECTORS,
    )

    parser = argparse.ArgumentParser(
        prog="sklearn-privacy",
        description="Protect personal data from unwanted inferences, and measure it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    evaluate = commands.add_parser("evaluate", help="evaluate protectors on real data")
    kinds = evaluate.add_subparsers(dest="kind", required=True)
    motion = kinds.add_parser(
        "motion",
        help="motion protectors on motion-sensor windows (default: HAPT, identity)",
        description=_MOTION_DESCRIPTION,
        formatter_class=_HelpFormatter,
    )
    # String defaults go through ``type`` like typed values, so the list options show
    # their default as the comma-separated text they take.
    motion.add_argument("--data", default="hapt",
                        help="'hapt' or a path to a MobiFall folder or MotionSense archive "
                             "(default: %(default)s)")
    motion.add_argument("--target", default="identity", choices=["identity", "gender"],
                        help="what the attacker infers (default: %(default)s)")
    motion.add_argument("--protectors", type=_csv, default=",".join(DEFAULT_PROTECTORS),
                        help=f"comma-separated, among: {', '.join(PROTECTORS)} "
                             "(default: %(default)s)")
    motion.add_argument("--attackers", type=_csv, default=",".join(DEFAULT_ATTACKERS),
                        help=f"comma-separated, among: {', '.join(ATTACKERS)}; the "
                             "headline is the worst case over them (default: %(default)s)")
    motion.add_argument("--apps", type=_csv, default=",".join(DEFAULT_APPS),
                        help=f"classifiers of the activity, comma-separated, among: "
                             f"{', '.join(APPS)}; the headline is the best of them "
                             "(default: %(default)s)")
    motion.add_argument("--profile", default="default", choices=list(PROFILES),
                        help="training budget of the app and the attackers "
                             "(default: %(default)s)")
    motion.add_argument("--epochs", type=int, default=None,
                        help="max epochs of the app and CNN attackers (default: the "
                             "profile's)")
    motion.add_argument("--max-subjects", type=int, default=None,
                        help="use only the first N people, for quick runs (default: all)")
    motion.add_argument("--step", type=int, default=128,
                        help="window step in samples; 128: no overlap, 64 doubles the data "
                             "(default: %(default)s)")
    motion.add_argument("--device", default="auto",
                        help="'auto', 'cpu' or 'cuda' (default: %(default)s)")
    motion.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    motion.add_argument("--output", default="sklearn_privacy_output",
                        help="folder for report.json, report.md and frontier.png "
                             "(default: %(default)s)")
    motion.add_argument("--n-jobs", type=int, default=None,
                        help="(fold, protector) tasks run at once; -1: all processors, or "
                             "all the cluster's workers with --scheduler (default: 1, or -1 "
                             "with --scheduler)")
    motion.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="address of a running Dask scheduler (e.g. tcp://host:8786) to "
                             "run the tasks on its workers; needs the 'distributed' extra "
                             "(default: none, run here)")
    motion.add_argument("--save-model", metavar="PATH", default=None,
                        help="after the report, fit the protector picked by --choose on all "
                             "the data and save it to PATH for 'sklearn-privacy protect' "
                             "(default: save nothing)")
    motion.add_argument("--choose", default="first", choices=list(CHOOSE_RULES),
                        help="protector saved by --save-model: 'first', the first one given "
                             "other than raw; 'private', the one with the lowest worst-case "
                             "adaptive advantage among those whose activity macro-F1 "
                             "reaches --utility-floor (default: %(default)s)")
    motion.add_argument("--utility-floor", type=float, default=0.0,
                        help="lowest activity macro-F1 for --choose private "
                             "(default: %(default)s)")
    motion.add_argument("--quiet", action="store_true", help="no progress output")
    _add_image_parser(kinds)

    protect = commands.add_parser(
        "protect",
        help="apply a saved protector to windows in a .npy file, chunk by chunk",
        description=_PROTECT_DESCRIPTION,
        formatter_class=_HelpFormatter,
    )
    protect.add_argument("model", metavar="MODEL",
                         help="protector file written by sklearn_privacy.persistence."
                              "save_protector")
    protect.add_argument("input", metavar="INPUT",
                         help=".npy file of windows (n_windows, n_timestamps, n_channels), "
                              "read as a memory map")
    protect.add_argument("output", metavar="OUTPUT",
                         help=".npy file to write the protected windows to (overwritten)")
    protect.add_argument("--chunk-size", type=int, default=4096,
                         help="windows read, protected and written at a time; bounds the "
                              "memory used (default: %(default)s)")
    protect.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


_IMAGE_DESCRIPTION = (
    "Train a CNN of the private attribute (the CIFAR-10 class, or gender on UTKFace) and "
    "unseen CNNs of other architectures, protect the test photos it labels correctly with "
    "each method, and measure success on the attacked and unseen models, robustness "
    "(JPEG 75, 3x3 median, 4-bit), quality (PSNR, SSIM, CIEDE2000, naturalness), Gaussian "
    "noise and blur at the same PSNR, and attackers retrained on protected photos "
    "(adaptive) beside attackers trained on clean ones (static). Prints a table and "
    "writes report.json and report.md to the output folder."
)


class _NoBreakHelpFormatter(_HelpFormatter):
    """Also keep long comma-separated defaults whole."""

    def _split_lines(self, text, width):
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False,
                             break_long_words=False)


def _add_image_parser(kinds):
    # The name tables only: no numpy or torch, so ``--help`` answers at once.
    from .evaluation._image_job import DEFAULT_METHODS, METHODS, PROFILES

    image = kinds.add_parser(
        "image",
        help="image protectors on photos (CIFAR-10: the class; UTKFace: gender)",
        description=_IMAGE_DESCRIPTION,
        formatter_class=_NoBreakHelpFormatter,
    )
    image.add_argument("--data", required=True,
                       help="a CIFAR-10 folder (train/ and test/ class folders, or the "
                            "python batches) or a UTKFace folder of face chips")
    image.add_argument("--profile", default="default", choices=list(PROFILES),
                       help="budget: 'quick' runs in a few minutes on a CPU "
                            "(default: %(default)s)")
    image.add_argument("--methods", type=_csv, default=",".join(DEFAULT_METHODS),
                       help=f"comma-separated, among: {', '.join(METHODS)} "
                            "(default: %(default)s)")
    image.add_argument("--device", default="auto",
                       help="'auto', 'cpu' or 'cuda' (default: %(default)s)")
    image.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    image.add_argument("--output", default="sklearn_privacy_output",
                       help="folder for report.json and report.md (default: %(default)s)")
    image.add_argument("--quiet", action="store_true", help="no progress output")


#: Seconds to wait for a Dask scheduler before giving up.
_CONNECT_TIMEOUT = 10


def _connect(address):
    """A ``distributed.Client`` connected to ``address``, or a ValueError saying why not."""
    try:
        import distributed
    except ImportError as exc:
        raise ValueError(
            "--scheduler needs Dask's distributed package: pip install "
            "'sklearn-privacy[distributed]'."
        ) from exc
    try:
        return distributed.Client(address, timeout=f"{_CONNECT_TIMEOUT}s",
                                  set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ValueError(
            f"could not reach a Dask scheduler at {address!r} within {_CONNECT_TIMEOUT} s "
            f"({exc}). Start one with 'dask scheduler' and workers with 'dask worker "
            "ADDRESS', and give the address it prints."
        ) from exc


def _evaluate_motion(args):
    import contextlib

    import pandas as pd

    from .evaluation import (
        PROFILES,
        choose_protector,
        evaluate_motion,
        fit_chosen_protector,
        load_motion_task,
        make_apps,
        make_attackers,
        make_protectors,
        summary_table,
        write_outputs,
    )

    if args.n_jobs == 0:
        raise ValueError("--n-jobs must be a non-zero integer (-1: all processors).")
    profile = PROFILES[args.profile]
    epochs = args.epochs if args.epochs is not None else profile["epochs"]
    verbose = 0 if args.quiet else 1
    start = time.perf_counter()
    protectors, profiles = make_protectors(args.protectors, epochs=epochs,
                                           device=args.device, random_state=args.seed)
    budget = dict(epochs=epochs, n_filters=profile["cnn_filters"],
                  n_kernels=profile["rocket_kernels"], device=args.device,
                  random_state=args.seed)
    attackers = make_attackers(args.attackers, **budget)
    apps = make_apps(args.apps, **budget)
    with contextlib.ExitStack() as stack:
        n_jobs = args.n_jobs
        if args.scheduler is not None:
            # Connect first: an unreachable scheduler fails before any data is loaded.
            import joblib

            client = stack.enter_context(_connect(args.scheduler))
            stack.enter_context(joblib.parallel_config(backend="dask", client=client))
            n_jobs = -1 if n_jobs is None else n_jobs
            if verbose:
                workers = len(client.scheduler_info(n_workers=-1)["workers"])
                print(f"running on the Dask scheduler at {args.scheduler} ({workers} "
                      "workers)", flush=True)
        task = load_motion_task(args.data, target=args.target, step=args.step,
                                max_subjects=args.max_subjects)
        if verbose:
            print(f"{task.dataset}: {len(task.X)} windows of {task.X.shape[1]} samples x "
                  f"{task.X.shape[2]} channels, {len(set(task.groups[:, 0]))} people, "
                  f"target={task.sensitive_name}", flush=True)
        report = evaluate_motion(
            task, protectors, attackers, apps=apps, profiles=profiles,
            utility_splits=profile["utility_splits"], random_state=args.seed,
            n_jobs=n_jobs, verbose=verbose,
        )
    paths = write_outputs(report, args.output, sensitive_name=task.sensitive_name)
    shown = list(attackers) + (["worst"] if len(attackers) > 1 else [])
    for attacker in shown:
        table = summary_table(report, sensitive_name=task.sensitive_name, attacker=attacker)
        print(f"\nattacker: {attacker}")
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            print(table.round(3).to_string())
    print("\nadaptive = retrained on protected data, static = trained on raw data; privacy "
          "measured on other recordings of the same people, utility on people the app never "
          "saw.")
    print(f"wrote {paths['json']}, {paths['markdown']} and {paths['plot']} "
          f"in {time.perf_counter() - start:.0f} s")
    if args.save_model is not None:
        from .persistence import save_protector

        chosen = choose_protector(report, args.choose, utility_floor=args.utility_floor,
                                  sensitive_name=task.sensitive_name)
        fitted = fit_chosen_protector(task, protectors[chosen])
        save_protector(fitted, args.save_model)
        print(f"saved {chosen} (--choose {args.choose}), fitted on all {len(task.X)} "
              f"windows, to {args.save_model}")
    return 0


def _protect(args):
    from pathlib import Path

    import numpy as np

    from .persistence import load_protector
    from .utils import chunked_transform

    source, target = Path(args.input), Path(args.output)
    if not source.is_file():
        raise FileNotFoundError(f"No input file at {source}.")
    if target.exists() and target.resolve() == source.resolve():
        raise ValueError("OUTPUT must differ from INPUT: the input is read while the output "
                         "is written.")
    if args.chunk_size < 1:
        raise ValueError(f"--chunk-size must be a positive integer; got {args.chunk_size}.")
    start = time.perf_counter()
    protector = load_protector(args.model)
    try:
        X = np.load(source, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{source} is not a .npy array file ({exc}).") from exc
    out = chunked_transform(protector, X, target, chunk_size=args.chunk_size,
                            verbose=not args.quiet)
    if not args.quiet:
        print(f"wrote {target}: {out.shape[0]} windows of shape {out.shape[1:]} "
              f"({out.dtype}) in {time.perf_counter() - start:.1f} s")
    return 0


def _evaluate_image(args):
    from .evaluation._image_job import (
        METHODS,
        PROFILES,
        evaluate_image,
        format_table,
        load_image_task,
        summary_rows,
        write_image_outputs,
    )

    unknown = [m for m in args.methods if m not in METHODS]
    if unknown or not args.methods:
        raise ValueError(f"--methods: unknown or no method {unknown}; choose among "
                         f"{', '.join(METHODS)}.")
    start = time.perf_counter()
    task = load_image_task(args.data, profile=args.profile, random_state=args.seed)
    if not args.quiet:
        print(f"{task.dataset}: {len(task.y_train)} training images, test pool "
              f"{len(task.y_test)}, private attribute {task.info['private_attribute']}",
              flush=True)
    records = evaluate_image(task, args.methods, profile=args.profile,
                             random_state=args.seed, device=args.device,
                             verbose=0 if args.quiet else 1)
    info = {"data": str(args.data), **task.info}
    paths = write_image_outputs(records, args.output, info=info,
                                settings={"profile": args.profile, "seed": args.seed,
                                          **PROFILES[args.profile]})
    print()
    print(format_table(summary_rows(records)))
    print(f"\nwrote {paths['json']} and {paths['markdown']} in "
          f"{time.perf_counter() - start:.0f} s")
    return 0


def main(argv=None):
    """Entry point of the ``sklearn-privacy`` command.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    status : int
        Exit status.
    """
    args = _parser().parse_args(argv)
    try:
        if args.command == "evaluate" and args.kind == "motion":
            return _evaluate_motion(args)
        if args.command == "evaluate" and args.kind == "image":
            return _evaluate_image(args)
        if args.command == "protect":
            return _protect(args)
    except (ValueError, FileNotFoundError, ImportError) as exc:
        # ImportError: an optional extra is missing; its message names the extra.
        print(f"sklearn-privacy: error: {exc}", file=sys.stderr)
        return 2
    return 1  # pragma: no cover - argparse enforces the sub-commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
