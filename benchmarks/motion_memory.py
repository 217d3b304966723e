"""Peak memory of ``transform`` of the learned motion protectors.

For :class:`~sklearn_privacy.motion.MotionAnonymizer` and
:class:`~sklearn_privacy.motion.ReplacementAutoEncoder`, fitted briefly on synthetic
windows (the memory of ``transform`` does not depend on what the network learned),
measures the resident memory that ``transform`` adds on top of its input: 50,000
windows of 128 samples x 6 channels, float32 (146 MB) by default. Each measurement
runs in a freshly spawned process that builds its own input, so nothing else in the
process has touched memory; the peak is the kernel's high-water mark of resident memory
(``VmHWM``, reset through ``/proc/self/clear_refs`` just before the call), minus the
resident memory just before it. The output itself (as large as a float32 input) is
part of that figure. The spawned processes use a fixed ``malloc`` mmap threshold
(``MALLOC_MMAP_THRESHOLD_``), so that freed large blocks (of the fit, of the input's
construction) go back to the system instead of staying resident and hiding later
allocations from the measurement.

For comparison, the same networks run through the previous implementation of
``transform`` (standardise the whole input in float64, run the network batch by
batch, map the whole output back in float64), rebuilt here in a few lines.

Writes ``benchmarks/results/motion_memory.json`` and ``motion_memory.md`` (records in
the format of DESIGN.md, ``metric="peak_memory_mb"``). Linux only (``/proc``).

Run ``python benchmarks/motion_memory.py --help``.
"""

import argparse
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "motion_memory.json"
IMPLEMENTATIONS = ("library", "previous")


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _make_data(n, n_timestamps, n_channels, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(n_timestamps)
    y = rng.integers(0, 3, n)
    who = rng.integers(0, 4, n)
    X = np.sin(2 * np.pi * (y[:, None] + 1) * t / n_timestamps)[:, :, None]
    X = X + 0.3 * who[:, None, None] + 0.2 * rng.standard_normal((n, n_timestamps, n_channels))
    return X.astype(np.float32), y, who


def _fit(name, n_timestamps, n_channels):
    from sklearn_privacy.motion import MotionAnonymizer, ReplacementAutoEncoder

    X, y, who = _make_data(512, n_timestamps, n_channels, seed=0)
    common = dict(validation_fraction=None, device="cpu", random_state=0)
    if name == "MotionAnonymizer":
        est = MotionAnonymizer(n_rounds=1, classifier_epochs=1, anonymizer_epochs=1, **common)
        return est.fit(X, y, sensitive_features=who)
    return ReplacementAutoEncoder(sensitive=[2], neutral=[1], max_epochs=1, **common).fit(X, y)


def _previous_transform(est, X):
    """``transform`` as it was: whole-input float64 standardisation and inverse."""
    import torch

    module = (est.net_.module_.anonymizer if hasattr(est.net_.module_, "anonymizer")
              else est.net_.module_).eval()
    Xs = np.ascontiguousarray(((X - est.mean_) / est.scale_).astype(np.float32)
                              .transpose(0, 2, 1))
    out = np.empty_like(Xs)
    with torch.no_grad():
        for start in range(0, Xs.shape[0], est.batch_size):
            xb = torch.from_numpy(Xs[start:start + est.batch_size])
            yb = module(xb)
            yb = yb[1] if isinstance(yb, tuple) else yb
            out[start:start + xb.shape[0]] = yb.numpy()
    return (out.transpose(0, 2, 1).astype(np.float64) * est.scale_ + est.mean_).astype(X.dtype)


def _measure(name, implementation, shape, queue):
    """In a spawned process: fit, build the input, warm up, measure one transform."""
    import torch

    torch.set_num_threads(1)
    n, n_timestamps, n_channels = shape
    est = _fit(name, n_timestamps, n_channels)
    X = _make_data(n, n_timestamps, n_channels, seed=1)[0]
    run = est.transform if implementation == "library" else (
        lambda Z: _previous_transform(est, Z))
    run(X[:256])  # warm up: lazy imports, allocator pools, torch's first-call costs
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark of resident memory
    base_kb = _status_kb("VmRSS")
    start = time.perf_counter()
    Xt = run(X)
    seconds = time.perf_counter() - start
    peak_kb = _status_kb("VmHWM")
    assert Xt.shape == X.shape and Xt.dtype == X.dtype
    queue.put(((peak_kb - base_kb) / 1024.0, X.nbytes / 2**20, seconds))


def measure(name, implementation, shape):
    """Extra peak resident memory (MB) of ``transform``, input MB and seconds."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_measure, args=(name, implementation, shape, queue))
    process.start()
    result = queue.get(timeout=3600)
    process.join()
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-windows", type=int, default=50_000)
    parser.add_argument("--n-timestamps", type=int, default=128)
    parser.add_argument("--n-channels", type=int, default=6)
    parser.add_argument("--implementations", default=",".join(IMPLEMENTATIONS),
                        help="comma-separated among %(default)s")
    parser.add_argument("--protectors", default="MotionAnonymizer,ReplacementAutoEncoder",
                        help="comma-separated among %(default)s")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from sklearn_privacy.evaluation import write_benchmark_records

    # Read by the C library of each spawned process at its start.
    os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"
    os.environ["MALLOC_TRIM_THRESHOLD_"] = "65536"
    shape = (args.n_windows, args.n_timestamps, args.n_channels)
    records = []
    for name in args.protectors.split(","):
        for implementation in args.implementations.split(","):
            extra_mb, input_mb, seconds = measure(name, implementation, shape)
            print(f"{name:24s} {implementation:9s} input {input_mb:6.0f} MB, extra peak "
                  f"{extra_mb:6.0f} MB ({extra_mb / input_mb:.2f}x), {seconds:.0f} s", flush=True)
            records.append({
                "dataset": "synthetic", "protector": name, "metric": "peak_memory_mb",
                "attacker": None, "mode": None, "level": None, "value": round(extra_mb, 1),
                "std": None, "n_folds": 1, "chance": None,
                "implementation": implementation, "input_shape": "x".join(map(str, shape)),
                "input_dtype": "float32", "input_mb": round(input_mb, 1),
                "ratio_to_input": round(extra_mb / input_mb, 2),
                "transform_seconds": round(seconds, 1),
            })
    write_benchmark_records(records, args.output)


if __name__ == "__main__":
    main()
