"""Image protectors on real data: ColorFool (and its variants), P-FGSM, EdgeFool.

A thin caller of the library's image protocol,
:func:`sklearn_privacy.evaluation.image_privacy_report`, through the job behind
``sklearn-privacy evaluate image``. For CIFAR-10 (the private attribute is the class)
and UTKFace (gender) it trains the attacked CNN (``"small"``) and unseen architectures,
protects the test images the attacked CNN labels correctly with each method, and
records success on the attacked and unseen CNNs, success after JPEG 75 / 3x3 median /
4-bit re-quantisation, top-k, quality (PSNR, SSIM, CIEDE2000, L-inf, naturalness),
Gaussian noise and blur calibrated to each method's per-image PSNR, and the adaptive
attackers (retrained on protected images; the headline privacy figure) beside static
ones. Results go to ``benchmarks/results/`` as JSON records (DESIGN.md, "Benchmark
results format") and a Markdown report that states the bars of the issue and whether
this run meets them.

Run (``--profile default``: about an hour per data set on two shared CPU cores)::

    OMP_NUM_THREADS=1 python benchmarks/image_privacy.py

``--profile quick`` (or ``--quick``) is a smoke test; ``--profile full`` trains longer
on more images. The options below override single settings of the profile.
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from sklearn_privacy.evaluation import (
    IMAGE_ATTACKED as ATTACKED,
    IMAGE_METHODS as METHODS,
    IMAGE_PROFILES as PROFILES,
    environment_record,
    evaluate_image,
    format_image_table as format_table,
    image_summary_rows as summary_rows,
    load_image_task,
    write_benchmark_records,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
FOLDERS = {"cifar10": "cifar10", "utkface": "utkface/crop_part1"}
ROBUSTNESS = ("jpeg75", "median3", "quant4")
#: Profile settings that have a command-line option here.
OVERRIDES = ("n_images", "n_train", "max_epochs", "n_filters", "colorfool_trials",
             "edgefool_images", "edgefool_max_iter", "n_adaptive_train", "n_adaptive_test",
             "adaptive_max_epochs")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA,
                   help="folder holding cifar10/ and utkface/crop_part1/")
    p.add_argument("--out-dir", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--name", default="image_privacy", help="results file stem")
    p.add_argument("--datasets", nargs="+", default=list(FOLDERS), choices=list(FOLDERS))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--profile", default="default", choices=list(PROFILES))
    p.add_argument("--quick", action="store_true", help="the same as --profile quick")
    for key in OVERRIDES:
        p.add_argument("--" + key.replace("_", "-"), type=int, default=None,
                       help="overrides the profile's setting")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (on shared, oversubscribed cores 1 is fastest)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--from-json", type=Path, default=None,
                   help="only rewrite the Markdown report of this results JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.profile = "quick"
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.from_json is not None:
        records = json.loads(args.from_json.read_text())
        write_outputs(records, args.from_json)
        return
    torch.set_num_threads(args.threads)
    overrides = {k: getattr(args, k) for k in OVERRIDES if getattr(args, k) is not None}
    settings = {**PROFILES[args.profile], **overrides}
    start, records, infos = time.perf_counter(), [], {}
    for name in args.datasets:
        print(f"{name}: loading", flush=True)
        task = load_image_task(args.data_dir / FOLDERS[name], profile=args.profile,
                               random_state=args.seed, **overrides)
        infos[name] = task.info
        records += evaluate_image(task, args.methods, profile=args.profile,
                                  random_state=args.seed, device=args.device, verbose=1,
                                  **overrides)
    env = environment_record()
    env.update(runtime_seconds=round(time.perf_counter() - start, 1),
               torch_threads=args.threads,
               command=" ".join(["python", "benchmarks/image_privacy.py"] + sys.argv[1:]),
               settings={"profile": args.profile, "seed": args.seed, **settings},
               datasets=infos)
    path_json = args.out_dir / f"{args.name}.json"
    written = write_outputs(records + [env], path_json)
    print(f"\nwrote {len(written)} records to {path_json} and its .md "
          f"({env['runtime_seconds'] / 60:.1f} min)\n")
    print(format_table(summary_rows(records)))
    for ds, prot, text, measured, ok in bars(records):
        print(f"BAR {ds:8s} {prot:26s} {text:40s} {measured:>16s}  "
              f"{'met' if ok else 'NOT met'}")


# -- report -----------------------------------------------------------------------------------
def _find(records, **query):
    return [r for r in records if all(r.get(k) == v for k, v in query.items())]


def _value(records, **query):
    found = _find(records, **query)
    return found[0]["value"] if found else None


def _fmt(v, pct=False, digits=1):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{100 * v:.{digits}f} %" if pct else f"{v:.{digits}f}"


def bars(records):
    """The issue's bars: ``(dataset, protector, bar, measured, met)`` tuples."""
    out = []
    transfer = sorted({r["attacker"] for r in records if r.get("mode") == "transfer"
                       and r["metric"] == "success_rate"})
    for ds in dict.fromkeys(r["dataset"] for r in records):
        def v(**q):
            return _value(records, dataset=ds, matched_to=None, **q)

        def check(prot, text, measured, ok):
            if measured is not None and not measured.startswith("-"):  # "-": no images
                out.append((ds, prot, text, measured, bool(ok)))

        for cf in [m for m in METHODS if m.startswith("ColorFool")]:
            s = v(protector=cf, metric="success_rate", attacker=ATTACKED, subset="correct")
            if s is None:
                continue
            check(cf, "success >= 95 %", _fmt(s, True), s >= 0.95)
            for a in transfer:
                t = v(protector=cf, metric="success_rate", attacker=a, subset="correct")
                if t is not None:
                    check(cf, f"transfer to {a} >= 60 %", _fmt(t, True), t >= 0.60)
            j = v(protector=cf, metric="success_rate_jpeg75", subset="correct")
            if j is not None:
                check(cf, "success after JPEG 75 >= 60 %", _fmt(j, True), j >= 0.60)
        li = v(protector="PrivateFGSM", metric="linf")
        if ds == "cifar10" and li is not None:
            check("PrivateFGSM", "L-inf <= 8/255 on uint8", f"{round(li * 255)}/255",
                  li <= 8 / 255 + 1e-9)
            for k, bar in ((1, 0.99), (3, 0.90)):
                t = v(protector="PrivateFGSM", metric=f"top{k}_out", subset="correct")
                if t is not None:
                    check("PrivateFGSM", f"true class out of top-{k} >= {bar:.0%}",
                          _fmt(t, True), t >= bar)
        s = v(protector="EdgeFool", metric="success_rate", attacker=ATTACKED, subset="correct")
        p = v(protector="EdgeFool", metric="psnr")
        if s is not None and p is not None:
            check("EdgeFool", "success >= 90 % with PSNR >= 30 dB",
                  f"{_fmt(s, True)}, {p:.1f} dB", s >= 0.90 and p >= 30)
    return out


def adaptive_lines(records):
    """Markdown table of the adaptive attackers (none if the run has no such rows)."""
    rows = []
    for r in records:
        if (r.get("subset") != "adaptive_test" or r.get("mode") != "adaptive"
                or r["metric"].endswith("_advantage") or r["metric"] == "success_rate_in_loop"):
            continue
        common = dict(dataset=r["dataset"], protector=r["protector"], attacker=r["attacker"],
                      subset="adaptive_test", matched_to=r.get("matched_to"))
        static = _find(records, mode="static", metric=r["metric"], **common)
        base = r["metric"].replace("_balanced_accuracy", "").replace("_accuracy", "")
        adv = _find(records, mode="adaptive", metric=base + "_advantage", **common)
        raw = _find(records, dataset=r["dataset"], protector="raw", attacker=r["attacker"],
                    mode="adaptive", metric=r["metric"], subset="adaptive_test")
        shown = (r["protector"] if r.get("matched_to") is None
                 else f"noise at {r['matched_to']}'s PSNR")
        cell = lambda x: f"{_fmt(x['value'], True)} ± {_fmt(x['std'], True)}"  # noqa: E731
        rows.append(f"| {r['dataset']} | {shown} | {r['attacker']} | "
                    f"{r['metric'].replace('_', ' ')} | {_fmt(r['chance'], True)} | "
                    f"{cell(raw[0]) if raw else '-'} | "
                    f"{cell(static[0]) if static else '-'} | **{cell(r)}** | "
                    f"{_fmt(adv[0]['value'], True) if adv else '-'} |")
    if not rows:
        return []
    return [
        "", "## Adaptive attackers (retrained on protected images)", "",
        "The privacy figure that counts (DESIGN.md): each attacker (the named "
        "architecture, seeded apart from the attacked one) is trained on the first "
        "training images, clean (*raw*: tested on clean images; *static*: tested on "
        "protected ones) or protected by the row's protector (*adaptive*), and scored "
        "on test images no model trained on, whether or not the attacked classifier "
        "labels them correctly. Accuracy for the 10 CIFAR-10 classes (chance = majority "
        "share), balanced accuracy for gender, ± its standard error; advantage = (score "
        "- chance) / (1 - chance), clipped at 0. Per-image EdgeFool and the "
        "ColorFool-robust variants are left out: protecting the attackers' training "
        "set one image at a time costs hours on a CPU.",
        "",
        "| data set | protector | attacker | score | chance | raw | static | adaptive | "
        "adaptive advantage |",
        "|---|---|---|---|---|---|---|---|---|",
    ] + rows


def headline_lines(records):
    head = ["data set", "method", "n", "success", "success (confident, n)"]
    transfer = sorted({r["attacker"] for r in records if r.get("mode") == "transfer"
                       and r["metric"] == "success_rate"})
    head += [f"transfer {a}" for a in transfer]
    head += ["JPEG 75", "median 3x3", "4-bit", "top-1 out", "top-3 out", "top-5 out",
             "PSNR dB", "SSIM", "CIEDE2000", "naturalness", "L-inf", "images/s",
             "noise at same PSNR", "blur at same PSNR (reached dB)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for ds in dict.fromkeys(r["dataset"] for r in records):
        for m in METHODS:
            def v(metric, subset="correct", protector=m, matched_to=None, **q):
                return _value(records, dataset=ds, protector=protector, metric=metric,
                              subset=subset, matched_to=matched_to, **q)

            succ = _find(records, dataset=ds, protector=m, metric="success_rate",
                         attacker=ATTACKED, subset="correct")
            if not succ:
                continue
            conf = _find(records, dataset=ds, protector=m, metric="success_rate",
                         attacker=ATTACKED, subset="confident")
            linf = v("linf", "all")
            blur_psnr = v("psnr", "all", protector="GaussianBlur", matched_to=m)
            blur = v("success_rate", protector="GaussianBlur", matched_to=m,
                     attacker=ATTACKED)
            cells = [ds, m, str(succ[0]["n"]), _fmt(succ[0]["value"], True),
                     f"{_fmt(conf[0]['value'], True)} ({conf[0]['n']})" if conf else "-"]
            cells += [_fmt(v("success_rate", attacker=a), True) for a in transfer]
            cells += [_fmt(v(f"success_rate_{t}"), True) for t in ROBUSTNESS]
            cells += [_fmt(v(f"top{k}_out"), True) for k in (1, 3, 5)]
            cells += [_fmt(v("psnr", "all")), _fmt(v("ssim", "all"), digits=3),
                      _fmt(v("ciede2000", "all"), digits=2),
                      _fmt(v("naturalness", "all"), digits=2),
                      "-" if linf is None else f"{round(linf * 255)}/255",
                      _fmt(v("transform_per_second", None)),
                      _fmt(v("success_rate", protector="GaussianNoise", matched_to=m,
                             attacker=ATTACKED), True),
                      f"{_fmt(blur, True)} ({_fmt(blur_psnr)})"]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_outputs(records, path_json):
    """The JSON records and the Markdown report beside it."""
    path_json, path_md = Path(path_json), Path(path_json).with_suffix(".md")
    written = write_benchmark_records(records, path_json, path_md)
    generic = path_md.read_text().splitlines()
    start = next((i for i, line in enumerate(generic) if line.startswith("| dataset")),
                 len(generic))
    env = next(r for r in written if r["metric"] == "environment")
    figures = [r for r in written if r["metric"] != "environment"]
    settings = env.get("settings", {})
    lines = [
        "# Image protectors: privacy, robustness and quality", "",
        f"Run: `{env.get('command', 'python benchmarks/image_privacy.py')}`, "
        f"{(env.get('runtime_seconds') or 0) / 60:.1f} min wall-clock on {env['cpu']} "
        f"({env['n_cpus']} CPUs, torch threads {env.get('torch_threads')}, GPU: "
        f"{env['gpu'] or 'none'}), {env['date']}. Python {env['python']}, torch "
        f"{env['torch']}, scikit-learn {env['sklearn']}, sklearn-privacy "
        f"{env['sklearn_privacy']}.", "",
        "Settings: " + ", ".join(f"`{k}={v}`" for k, v in settings.items()) + ".", "",
    ]
    for ds, info in (env.get("datasets") or {}).items():
        acc = {r["attacker"]: r["value"] for r in _find(figures, dataset=ds, protector="raw",
                                                          metric="clean_accuracy")}
        lines.append(f"- **{ds}** (private attribute: {info['private_attribute']}). "
                     f"Training: {info['train']}. Test pool: {info['pool']}. Clean "
                     "accuracy: " + ", ".join(f"{a} {_fmt(x, True)}" for a, x in acc.items())
                     + ".")
    lines += [
        "", "All success figures are measured on the saved uint8 images through each "
        "classifier's deployment preprocessing, never inside an attack loop. *Success* = "
        "the true (private) label is no longer predicted, counted on test images the "
        "attacked classifier labels correctly (transfer: images the unseen model labels "
        "correctly too). The `std` of a rate is its standard error; of a quality figure, "
        "the spread over images. Noise/blur columns: Gaussian noise / blur calibrated "
        "per image to the PSNR the method reached (blur cannot go below the PSNR of its "
        "largest sigma, a sixth of the image side).", "",
        "## Bars of the issue", "",
        "| data set | method | bar | measured | met |", "|---|---|---|---|---|",
    ]
    for ds, prot, text, measured, ok in bars(figures):
        lines.append(f"| {ds} | {prot} | {text} | {measured} | {'yes' if ok else '**no**'} |")
    lines += adaptive_lines(figures)
    lines += ["", "## Headline figures (subset `correct`)", ""] + headline_lines(figures)
    def floor(ds, t):
        return _fmt(_value(figures, dataset=ds, protector="raw", subset="correct",
                           metric=f"success_rate_{t}"), True)

    floors = "; ".join(f"{ds}: " + ", ".join(f"{t} {floor(ds, t)}" for t in ROBUSTNESS)
                       for ds in dict.fromkeys(r["dataset"] for r in figures))
    lines += ["", f"Floors (the clean images through the same transform): {floors}.",
              "", "## All records", ""] + generic[start:]
    path_md.write_text("\n".join(lines) + "\n")
    return written


if __name__ == "__main__":
    main()
