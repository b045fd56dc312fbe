"""Command line: ``python -m bplf COMMAND`` (train, sample, evaluate, export, bench, ...)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from PIL import Image

from bplf.course import guard, release
from bplf.data import EMOTIONS, build_emotion_set, load_emotion_set
from bplf.likelihood import to_uint8
from bplf.pretrained import export_model
from bplf.research import conditioning, experiments, noise, quoted, quotes, scoring
from bplf.research.bench import throughput
from bplf.research.evaluate import SWEEPS, evaluate_checkpoint
from bplf.research.metrics.classifier import ClassifierConfig, evaluate_classifier, train_classifier
from bplf.runs import TrainConfig, load_checkpoint
from bplf.settings import setup_cpu
from bplf.train import train
from bplf.utils import atomic_write


def _json_arg(text: str) -> dict:
    """A JSON object given inline or as a file path."""
    raw = text
    if not text.lstrip().startswith("{"):
        try:
            raw = Path(text).read_text()
        except OSError as err:
            raise argparse.ArgumentTypeError(f"{text}: cannot read ({err})") from None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"{text}: not a JSON object or file ({err})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text}: expected a JSON object")
    return value


def cmd_train(args: argparse.Namespace) -> None:
    options = dict(args.config.get("train", {})) if args.config else {}
    model_overrides = dict(args.config.get("model", {})) if args.config else {}
    options["preset"] = args.preset or options.get("preset", "bplf")
    for name in ("steps", "batch_size", "lr", "seed"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    model_overrides.update(args.model or {})
    trainer = train(TrainConfig.from_dict(options), args.out, model_overrides,
                    resume=args.resume, device=args.device)
    if trainer.rank == 0:
        print(f"finished at step {trainer.state.step}; best val bpd "
              f"{trainer.state.best_val_bpd:.4f}; run directory {args.out}")


def cmd_sample(args: argparse.Namespace) -> None:
    model = load_checkpoint(args.checkpoint, args.device)
    torch.manual_seed(args.seed)
    y = torch.arange(len(EMOTIONS), device=next(model.parameters()).device)
    y = y.repeat_interleave(args.per_emotion)
    with torch.no_grad():
        u = to_uint8(model.sample(len(y), y=y, temperature=args.temperature)).cpu().numpy()
    side = u.shape[-1]
    grid = u.reshape(len(EMOTIONS), args.per_emotion, side, side).transpose(0, 2, 1, 3)
    grid = grid.reshape(len(EMOTIONS) * side, args.per_emotion * side)
    atomic_write(args.output, lambda tmp: Image.fromarray(grid).save(tmp, format="PNG"))
    print(f"wrote {args.output}: one row per emotion ({', '.join(EMOTIONS)}), "
          f"temperature {args.temperature}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    report = evaluate_checkpoint(args.checkpoint, split=args.split, limit=args.limit,
                                 device=args.device, classifier=args.classifier,
                                 n_per_emotion=args.per_emotion,
                                 temperatures=tuple(args.temperatures),
                                 edit_faces=args.edit_faces, guidance=tuple(args.guidance),
                                 sweep=args.sweep, workers=args.workers)
    text = json.dumps(report, indent=1)
    print(text)
    if args.output:
        atomic_write(args.output, lambda tmp: tmp.write_text(text))


def cmd_bench(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    setup_cpu()
    rows = []
    for preset in args.preset:
        for precision in args.precision:
            r = throughput(preset, batch_size=args.batch_size, steps=args.steps,
                           device=args.device, amp=precision == "bf16", **(args.model or {}))
            r = {"preset": preset, "batch_size": args.batch_size,
                 **({"model": args.model} if args.model else {}), **r}
            rows.append(r)
            print(json.dumps(r))
    if args.output:
        atomic_write(args.output, lambda tmp: tmp.write_text(json.dumps(rows, indent=1)))


def cmd_export(args: argparse.Namespace) -> None:
    dest = export_model(args.run, args.weights)
    size = dest.stat().st_size / 2**20
    print(f"wrote {dest} ({size:.1f} MiB) from {args.weights}")


def cmd_train_classifier(args: argparse.Namespace) -> None:
    cfg = ClassifierConfig.from_dict({**(args.config or {}),
                                      **({"epochs": args.epochs} if args.epochs else {})})
    es = load_emotion_set()
    model = train_classifier(es, args.out, cfg, args.device)
    report = evaluate_classifier(model, es, "test")
    text = json.dumps(report, indent=1)
    atomic_write(args.out / "evaluation.json", lambda tmp: tmp.write_text(text))
    print(json.dumps({k: report[k] for k in ("accuracy", "n", "sources")}, indent=1))


def cmd_ablate(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.configs and len(args.grid) > 1:
        raise SystemExit("--configs needs a single --grid")
    results = experiments.run_grids(args.grid, args.budget, tuple(args.seeds), args.workers,
                                    args.configs, device=args.device)
    for grid, rows in results.items():
        print(f"== {grid} ==\n{experiments.summary(rows).to_string()}")


#: the experiments whose grids ``ablate-fidelity`` scores: the module (its ``summary``,
#: ``verdicts`` and ``BASELINE`` config) and its ``scoring.GridScoring``
EXPERIMENTS = {"conditioning": (conditioning, conditioning.FidelityConfig),
               "noise": (noise, noise.NoiseScoring)}


def cmd_ablate_fidelity(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.grid not in EXPERIMENTS:
        raise SystemExit(f"no scoring for grid {args.grid!r}; scored: {sorted(EXPERIMENTS)}")
    experiment, scoring_class = EXPERIMENTS[args.grid]
    cfg = scoring_class(per_emotion=args.per_emotion, edit_faces=args.edit_faces)
    rows = scoring.evaluate_grid(args.grid, args.budget, tuple(args.seeds), args.configs, cfg,
                                 workers=args.workers)
    print(experiment.summary(rows).to_string())
    if experiment.BASELINE in set(rows["config"]):
        print(experiment.verdicts(rows).to_string())


def cmd_build_data(args: argparse.Namespace) -> None:
    m = build_emotion_set(force=args.force)
    counts = {src: sum(n for sp in c.values() for n in sp.values())
              for src, c in m["counts"].items()}
    print(json.dumps({"total": m["total"], "per_source": counts, "synthetic": m["synthetic"],
                      "duplicates_removed": m["duplicates"]["removed"]}, indent=1))


def cmd_student(args: argparse.Namespace) -> None:
    written = release.make_student(args.out, args.notebooks or None)
    rows = release.summary(args.notebooks or None)
    print(f"wrote {len(written)} student notebooks to {args.out}: {len(rows)} exercises, "
          f"{sum(r['points'] for r in rows):g} points")


def cmd_grade(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    rows = release.grade(args.submissions, args.out, args.workers, args.exercises_only)
    print(f"graded {len(rows)} submissions in {time.perf_counter() - start:.0f} s: "
          f"{args.out / 'grades.csv'}, feedback in {args.out / 'feedback'}")


def cmd_render_docs(args: argparse.Namespace) -> None:
    if not args.check:
        changed = quoted.render()
        print("rewrote " + (", ".join(map(str, changed)) if changed else "nothing: all up to date"))
    stale = [f"{block}: out of date (python -m bplf render-docs)" for block in quoted.stale()]
    wrong = stale + quoted.problems(quotes.QUOTES, quotes.SETTINGS)
    if wrong:
        raise SystemExit("the prose and the results disagree (bplf.research.quotes lists each "
                         "figure's source):\n  " + "\n  ".join(wrong))
    print(f"every quoted figure matches its result file ({len(quotes.QUOTES)} in sentences)")


def cmd_strip_notebooks(args: argparse.Namespace) -> None:
    if not args.staged and not args.files:
        raise SystemExit("strip-notebooks: give notebooks, or --staged")
    sys.exit(guard.run(args))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bplf", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a flow on the emotion set")
    p.add_argument("--preset", help="model preset: bplf, glow, realnvp (default bplf)")
    p.add_argument("--config", type=_json_arg,
                   help='JSON file or text: {"train": {...TrainConfig}, "model": {...overrides}}')
    p.add_argument("--model", type=_json_arg, help="model config overrides (JSON)")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--out", type=Path, default=Path("runs/bplf"), help="run directory")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="write a grid of class-conditional samples")
    p.add_argument("--checkpoint", type=Path, required=True, help="run directory")
    p.add_argument("--output", type=Path, default=Path("samples.png"))
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--per-emotion", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("evaluate", help="test bpd per source and round-trip error")
    p.add_argument("--checkpoint", type=Path, required=True, help="run directory")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=None, help="at most this many faces per source")
    p.add_argument("--output", type=Path, help="also write the report as JSON")
    p.add_argument("--per-emotion", type=int, default=500,
                   help="fidelity metrics on this many samples per emotion (0: skip them)")
    p.add_argument("--temperatures", type=float, nargs="+", default=[0.5, 0.7, 1.0])
    p.add_argument("--guidance", type=float, nargs="+", default=[1.0],
                   help="guidance scales, each by the coupling rule and by the prior rule, of "
                        "the samples and of swap and reexpress edits (above 1: a model trained "
                        "with label dropout; bplf.guidance)")
    p.add_argument("--sweep", choices=["grid", *SWEEPS], default="grid",
                   help="grid: every temperature x guidance scale; person: the curated sweep "
                        "of bplf.research.evaluate.person_sweep; shortlist: its settings in "
                        "contention (shortlist_sweep; the named sweeps ignore --temperatures, "
                        "--guidance)")
    p.add_argument("--workers", type=int, default=1,
                   help="2: measure the edits in a second process (one thread each)")
    p.add_argument("--edit-faces", type=int, default=200,
                   help="test faces edited toward every emotion (0: skip the edit metrics)")
    p.add_argument("--classifier", type=Path, help="classifier directory (default: shipped)")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("bench", help="training images/s of presets on this device")
    p.add_argument("--preset", nargs="+", default=["bplf", "glow", "realnvp"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--model", type=_json_arg, help="model config overrides (JSON)")
    p.add_argument("--precision", nargs="+", choices=["float32", "bf16"], default=["float32"],
                   help="time each preset in each: bf16 is autocast, as TrainConfig.amp")
    p.add_argument("--output", type=Path)
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("export", help="keep a run's selected weights as RUN/model.pt")
    p.add_argument("--run", type=Path, required=True, help="run directory")
    p.add_argument("--weights", default="best.pt", help="best.pt (lowest val bpd) or checkpoint.pt")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("train-classifier",
                       help="train the emotion classifier used by the fidelity metrics")
    p.add_argument("--out", type=Path, default=Path("runs/emotion-cnn"))
    p.add_argument("--config", type=_json_arg, help="ClassifierConfig fields (JSON)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_train_classifier)

    p = sub.add_parser("ablate",
                       help="train ablation grids into results/ablations/BUDGET/GRID.csv")
    p.add_argument("--grid", required=True, nargs="+",
                   help="conditioner, pca, branches, baselines and/or conditioning")
    p.add_argument("--budget", default="cpu",
                   help="gpu, cpu, cpu-long or quick (bplf.research.experiments.BUDGETS)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--configs", nargs="+", help="only these configs of the grid")
    p.add_argument("--threads", type=int)
    p.add_argument("--workers", type=int, default=1,
                   help="train this many runs at once, one process each (a GPU fits many)")
    p.add_argument("--device", default=None)
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("ablate-fidelity", help="samples and edits of an ablation grid's runs: "
                       "results/ablations/BUDGET/GRID-fidelity.csv (bplf.research.conditioning)")
    p.add_argument("--grid", default="conditioning")
    p.add_argument("--budget", default="cpu-long")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--configs", nargs="+", help="only these configs of the grid")
    p.add_argument("--per-emotion", type=int, default=300, help="samples per emotion and setting")
    p.add_argument("--edit-faces", type=int, default=200,
                   help="test faces, each edited toward the 6 other emotions")
    p.add_argument("--threads", type=int)
    p.add_argument("--workers", type=int, default=1, help="runs evaluated at once")
    p.set_defaults(func=cmd_ablate_fidelity)

    p = sub.add_parser("build-data", help="build the emotion set from BPLF_RAW_DIR")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_build_data)

    p = sub.add_parser("render-docs", help="rewrite the tables the README and docs quote from "
                       "the committed result files, and check every figure in their sentences "
                       "(bplf.research.quoted)")
    p.add_argument("--check", action="store_true", help="only check, rewrite nothing")
    p.set_defaults(func=cmd_render_docs)

    p = sub.add_parser("strip-notebooks",
                       help="strip dataset-face outputs and widget state from notebooks")
    guard.add_arguments(p)
    p.set_defaults(func=cmd_strip_notebooks)

    p = sub.add_parser("student", help="write the student release of the notebooks (nbgrader: "
                       "solutions stubbed, hidden tests and outputs removed)")
    p.add_argument("notebooks", nargs="*", type=Path, help="instructor notebooks (default: all)")
    p.add_argument("--out", type=Path, default=Path("release"), help="output folder")
    p.set_defaults(func=cmd_student)

    p = sub.add_parser("grade", help="grade a folder of submissions as nbgrader autograde does "
                       "(quick mode, nbgrader_config.py's timeouts, in parallel): grades.csv and "
                       "a feedback copy of each")
    p.add_argument("submissions", type=Path,
                   help="folder: STUDENT/ASSIGNMENT/*.ipynb (nbgrader's submitted/), "
                        "STUDENT/*.ipynb or *.ipynb")
    p.add_argument("--out", type=Path, default=Path("graded"),
                   help="where grades.csv and feedback/ go (default: graded)")
    p.add_argument("--workers", type=int, help="gradings at once (default: one per core, "
                   "as memory allows)")
    p.add_argument("--exercises-only", action="store_true",
                   help="run only the set-up cell and the exercises, not the whole lesson")
    p.set_defaults(func=cmd_grade)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
