"""Out-of-core protection: memory and throughput of ``chunked_transform`` from disk.

Builds a ``.npy`` file of N windows of 128 samples x 6 channels, float32 (by default
1,000,000 windows, about 3 GB), in a temporary folder, a chunk at a time: HAPT's windows
(accelerometer and gyroscope, 6 channels) tiled until N. A
:class:`~sklearn_privacy.motion.MotionAnonymizer` (briefly trained: memory and speed of
``transform`` do not depend on what the network learned) and an
:class:`~sklearn_privacy.motion.SSASmoother` are fitted on HAPT and saved with
:func:`~sklearn_privacy.persistence.save_protector`. Then, for each protector, in a
freshly spawned process that loads it:

- ``chunked``: :func:`~sklearn_privacy.utils.chunked_transform` from a memory map of the
  file to another ``.npy`` file, chunk by chunk;
- ``in_memory``: the first ``--subset`` windows (a size that fits) read into memory and
  protected by one ``transform`` call.

Each gives the throughput (windows per second) and the peak resident memory: the
kernel's high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs`` just before
the call), also as the memory added to what the process held just before, and the
largest resident memory seen by a thread sampling ``/proc/self/statm`` every 20 ms.
Torch runs on ``--torch-threads`` threads (default 1).

Writes ``benchmarks/results/out_of_core.json`` and ``out_of_core.md``. Linux only
(``/proc``). Needs free disk space of twice the input in the temporary folder.

Run ``python benchmarks/out_of_core.py --help``.
"""

import argparse
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from queue import Empty

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "out_of_core.json"
PROTECTORS = ("MotionAnonymizer", "SSASmoother")


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


class _Sampler(threading.Thread):
    """Largest resident memory (kB) seen every ``interval`` seconds."""

    def __init__(self, interval=0.02):
        super().__init__(daemon=True)
        self.interval, self.peak_kb, self._halt = interval, 0, threading.Event()
        self._page_kb = os.sysconf("SC_PAGE_SIZE") // 1024

    def run(self):
        while not self._halt.is_set():
            with open("/proc/self/statm") as f:
                self.peak_kb = max(self.peak_kb, int(f.read().split()[1]) * self._page_kb)
            time.sleep(self.interval)

    def stop(self):
        self._halt.set()
        self.join()
        return self.peak_kb


def _hapt_windows():
    from sklearn_privacy.evaluation import load_motion_task

    task = load_motion_task("hapt", step=64, magnitude=False)
    return task.X.astype(np.float32), task.y, task.sensitive


def _write_input(path, n, windows, chunk=65536):
    """``n`` windows tiled from ``windows``, written to ``path`` a chunk at a time."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32,
                                    shape=(n, *windows.shape[1:]))
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        out[start:stop] = windows[np.arange(start, stop) % len(windows)]
    out.flush()
    del out


def _fit_and_save(name, X, y, s, path):
    from sklearn_privacy.motion import MotionAnonymizer, SSASmoother
    from sklearn_privacy.persistence import save_protector

    if name == "MotionAnonymizer":
        protector = MotionAnonymizer(n_rounds=1, classifier_epochs=1, anonymizer_epochs=1,
                                     validation_fraction=None, device="cpu", random_state=0)
        protector.fit(X, y, sensitive_features=s)
    else:
        protector = SSASmoother(n_components=1).fit(X)
    save_protector(protector, path)


def _measure(model, source, target, mode, subset, chunk_size, threads, queue):
    """In a spawned process: load the protector, then time and watch one run."""
    import torch

    from sklearn_privacy.persistence import load_protector
    from sklearn_privacy.utils import chunked_transform

    torch.set_num_threads(threads)
    protector = load_protector(model)
    X = np.load(source, mmap_mode="r")
    protector.transform(np.array(X[:256]))  # warm up: lazy imports, first-call costs
    if mode == "in_memory":
        X = np.array(X[:subset])  # read before the clock: the input is not counted
    n = len(X)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark of resident memory
    base_kb = _status_kb("VmRSS")
    sampler = _Sampler()
    sampler.start()
    start = time.perf_counter()
    if mode == "chunked":
        out = chunked_transform(protector, X, target, chunk_size=chunk_size)
    else:
        out = protector.transform(X)
    seconds = time.perf_counter() - start
    sampled_kb = sampler.stop()
    peak_kb = _status_kb("VmHWM")
    assert out.shape == X.shape
    queue.put({"windows": n, "seconds": seconds, "peak_rss_mb": peak_kb / 1024,
               "peak_rss_added_mb": (peak_kb - base_kb) / 1024,
               "sampled_peak_rss_mb": sampled_kb / 1024, "base_rss_mb": base_kb / 1024})


def measure(model, source, target, mode, subset, chunk_size, threads):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_measure,
                          args=(model, source, target, mode, subset, chunk_size, threads,
                                queue))
    process.start()
    while True:
        try:
            result = queue.get(timeout=5)
            break
        except Empty:
            if not process.is_alive():
                raise RuntimeError(f"the measurement of {mode} failed (exit code "
                                   f"{process.exitcode}); its error is printed above.")
    process.join()
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-windows", type=int, default=1_000_000,
                        help="windows in the file on disk (default: %(default)s, ~3 GB)")
    parser.add_argument("--subset", type=int, default=50_000,
                        help="windows of the in-memory comparison (default: %(default)s)")
    parser.add_argument("--chunk-size", type=int, default=16_384,
                        help="windows per chunk of chunked_transform (default: %(default)s)")
    parser.add_argument("--protectors", default=",".join(PROTECTORS),
                        help="comma-separated among %(default)s")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch threads of the measured processes (default: %(default)s)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="folder for the temporary files (default: the system's "
                             "temporary folder)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = [name for name in args.protectors.split(",") if name]
    unknown = sorted(set(names) - set(PROTECTORS))
    if unknown:
        parser.error(f"unknown protectors {unknown}; choose among {PROTECTORS}")

    from sklearn_privacy.evaluation import make_record, write_benchmark_records

    # Read by the C library of each spawned process at its start: freed large blocks go
    # back to the system instead of hiding later allocations from the measurement.
    os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"
    os.environ["MALLOC_TRIM_THRESHOLD_"] = "65536"
    workdir = Path(tempfile.mkdtemp(prefix="out_of_core_", dir=args.workdir))
    records = []
    try:
        X, y, s = _hapt_windows()
        source = workdir / "windows.npy"
        start = time.perf_counter()
        _write_input(source, args.n_windows, X)
        input_mb = source.stat().st_size / 2**20
        print(f"input: {args.n_windows} windows of {X.shape[1]} x {X.shape[2]} float32 "
              f"({input_mb:.0f} MB) written in {time.perf_counter() - start:.0f} s",
              flush=True)
        subset = min(args.subset, args.n_windows)
        for name in names:
            model = workdir / f"{name}.skp"
            _fit_and_save(name, X, y, s, model)
            for mode in ("in_memory", "chunked"):
                target = workdir / "protected.npy"
                result = measure(model, source, target, mode, subset, args.chunk_size,
                                 args.torch_threads)
                target.unlink(missing_ok=True)
                rate = result["windows"] / result["seconds"]
                data_mb = result["windows"] * X[0].nbytes / 2**20
                print(f"{name:17s} {mode:9s} {result['windows']:>9d} windows "
                      f"({data_mb:6.0f} MB): {rate:8.0f} windows/s, peak RSS "
                      f"{result['peak_rss_mb']:6.0f} MB (+{result['peak_rss_added_mb']:.0f} "
                      f"MB during the call)", flush=True)
                extra = dict(method=mode, torch_threads=args.torch_threads,
                             windows=result["windows"], data_mb=round(data_mb, 1),
                             chunk_size=args.chunk_size if mode == "chunked" else None,
                             seconds=round(result["seconds"], 2))
                records += [
                    make_record("hapt-tiled", name, "windows_per_second", rate, **extra),
                    make_record("hapt-tiled", name, "peak_rss_mb", result["peak_rss_mb"],
                                **extra),
                    make_record("hapt-tiled", name, "peak_rss_added_mb",
                                result["peak_rss_added_mb"], **extra),
                    make_record("hapt-tiled", name, "sampled_peak_rss_mb",
                                result["sampled_peak_rss_mb"], **extra),
                ]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    write_benchmark_records(records, args.output)
    print(f"wrote {args.output} and {args.output.with_suffix('.md')}")


if __name__ == "__main__":
    main()
