"""Figures quoted in the prose, rendered from the committed result files.

A markdown file (the README, a checkpoint's README, the teacher's guide) marks a quoted block
``<!-- figures: NAME ARG -->`` ... ``<!-- /figures -->``; ``render`` rewrites every block from
the result file ``RENDERERS[NAME]`` reads (ARG: a model directory), and ``stale`` lists the
blocks whose text no longer matches its source, so a test fails when prose and results drift
apart (``python -m bplf render-docs`` brings them back together).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from bplf.pretrained import read_evaluation
from bplf.research.conditioning import summary
from bplf.research.experiments import read_fidelity
from bplf.research.metrics.fidelity import CEILING
from bplf.settings import REPO_ROOT
from bplf.utils import atomic_write

BLOCK = re.compile(r"(<!-- figures: (\S+)(?: (\S+))? -->\n)(.*?)(<!-- /figures -->)", re.S)
#: the files whose quoted blocks are rendered and checked
DOCUMENTS = ("README.md", "checkpoints/bplf-emotion48/README.md",
             "checkpoints/bplf-emotion48-v1/README.md", "docs/teaching.md")


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _sample_row(name: str, r: dict) -> str:
    return (f"| {name} | {_pct(r['face_rate'])} | {_pct(r['accuracy'])} | "
            f"**{_pct(r['joint_rate'])}** | {r['pair_ssim']:.2f} | {r['fd']:.2f} | "
            f"{r['precision']:.2f} / {r['recall']:.2f} |")


SAMPLE_HEADER = ("| samples | face rate | read as the emotion | joint rate | pair SSIM | FD | "
                 "precision / recall |\n| --- | --- | --- | --- | --- | --- | --- |")


def _own(report: dict) -> list[dict]:
    return [r for r in report["fidelity"] if r["generator"] == report["checkpoint"]]


def _find(report: dict, temperature: float, guidance: str) -> dict | None:
    return next((r for r in _own(report) if r["temperature"] == temperature
                 and r["guidance"] == guidance), None)


def person_samples(model_dir: str) -> str:
    """Real test faces, the recommended sample setting, unguided samples and (where measured)
    the setting recommended before the face metrics (couplings guided 8), as a table."""
    report = read_evaluation(REPO_ROOT / model_dir)
    real = next(r for r in report["fidelity"] if r["generator"] == CEILING)
    best = report["recommended"]["samples"]
    rows = [_sample_row(f"real test faces ({real['n']:,})", real)]
    chosen = _find(report, best["temperature"], best["guidance"])
    rows.append(_sample_row(f"**recommended**: T {best['temperature']:g}, {best['guidance']}",
                            chosen))
    for t, g, name in ((0.7, "unguided", "T 0.7, unguided"),
                       (0.7, "couplings 8", "before: T 0.7, couplings 8")):
        row = _find(report, t, g)
        if row is not None and row is not chosen:
            rows.append(_sample_row(name, row))
    n = _own(report)[0]["n"]
    return (f"{SAMPLE_HEADER}\n" + "\n".join(rows) + f"\n\n{n:,} samples per setting "
            f"({n // 7} per emotion).")


def person_sweep(model_dir: str) -> str:
    """Every sample setting of the evaluation: face, reading and joint rates, diversity."""
    report = read_evaluation(REPO_ROOT / model_dir)
    rows = [_sample_row(f"T {r['temperature']:g}, {r['guidance']}", r)
            for r in sorted(_own(report), key=lambda r: (r["temperature"], r["guidance"]))]
    return f"{SAMPLE_HEADER}\n" + "\n".join(rows)


def _edit_row(name: str, e: dict) -> str:
    kept = "yes" if e["keeps_person"] else "no"
    return (f"| {name} | {_pct(e['hit_rate'])} | {_pct(e['face_rate'])} | "
            f"**{_pct(e['joint_rate'])}** | {e['ssim']:.2f} ({kept}) | {e['rmse']:.0f} |")


EDIT_HEADER = ("| edit | read as the target | face rate | joint hit-rate | SSIM to input (keeps "
               "the person) | RMSE |\n| --- | --- | --- | --- | --- | --- |")


def person_edits(model_dir: str) -> str:
    """The recommended edit, the best kept edit of every method, and (where measured) the edit
    recommended before the face metrics (swap, couplings 8, intensity 1), with the references."""
    report = read_evaluation(REPO_ROOT / model_dir)
    ref = report["reference"]
    best = report["recommended"]["edits"]
    edits = report["edits"]
    rows = []
    chosen = next(e for e in edits if e["method"] == best["method"]
                  and e["guidance"] == best["guidance"] and e["intensity"] == best["intensity"])
    rows.append(_edit_row(f"**recommended**: {best['method']}, {best['guidance']}, intensity "
                          f"{best['intensity']:g}", chosen))
    floor = 0.9 * ref["edit_inputs"]["face_rate"]
    for method in dict.fromkeys(e["method"] for e in edits):
        mine = [e for e in edits if e["method"] == method and e is not chosen]
        good = [e for e in mine if e["keeps_person"] and e["face_rate"] >= floor] or mine
        if good:
            e = max(good, key=lambda e: e["joint_rate"])
            fewer = f" ({e['n']} edits)" if e["n"] != chosen["n"] else ""
            rows.append(_edit_row(f"best {method}: {e['guidance']}, intensity "
                                  f"{e['intensity']:g}{fewer}", e))
    before = next((e for e in edits if e["method"] == "swap" and e["guidance"] == "couplings 8"
                   and e["intensity"] == 1.0), None)
    if before is not None:
        rows.append(_edit_row("before: swap, couplings 8, intensity 1", before))
    return (f"{EDIT_HEADER}\n" + "\n".join(rows) + f"\n\nEach of {ref['edit_inputs']['n']} "
            f"test faces edited toward the 6 other emotions; the inputs' own face rate is "
            f"{_pct(ref['edit_inputs']['face_rate'])}. Same person, another expression (CK+ and "
            f"JAFFE, {ref['same_person']['n']:,} pairs): SSIM {ref['same_person']['ssim']:.2f}, "
            f"RMSE {ref['same_person']['rmse']:.0f}.")


def run_progress(folder: str) -> str:
    """The recommended settings' figures of each ``stepN.json`` evaluation in ``folder`` (the
    format written before the face metrics: the classifier's reading only)."""
    rows = []
    for path in sorted((REPO_ROOT / folder).glob("step*.json"),
                       key=lambda p: int(p.stem.removeprefix("step"))):
        best = read_evaluation(path.parent, path.name)["recommended"]
        rows.append(f"| {int(path.stem.removeprefix('step')):,} | "
                    f"{_pct(best['samples']['accuracy'])} | {_pct(best['edits']['hit_rate'])} | "
                    f"{best['edits']['ssim']:.2f} |")
    return ("| step | sample fidelity (classifier only) | swap edit hit-rate at intensity 1 "
            "(guidance 8) | edit SSIM to input |\n| --- | --- | --- | --- |\n" + "\n".join(rows))


def conditioning_summary(budget: str) -> str:
    """The conditioning grid's summary (``bplf.research.conditioning.summary``: seed means and sds)
    from its committed fidelity rows under ``budget``."""
    table = summary(read_fidelity(budget, "conditioning"))
    rows = []
    for config, r in table.iterrows():
        guided = f", guidance {r['best guidance']:g}" if r["best guidance"] != 1 else ""
        edit_g = f", guidance {r['edit guidance']:g}" if r["edit guidance"] != 1 else ""
        rows.append(f"| `{config}` | {r['test bpd']:.3f} +- {r['bpd sd']:.3f} | "
                    f"{_pct(r['best fidelity'])} +- {100 * r['fidelity sd']:.1f} "
                    f"(T {r['best T']:g}{guided}) | {r['FD there']:.2f} | "
                    f"{_pct(r['edit hit-rate'])} +- {100 * r['edit sd']:.1f} "
                    f"({r['edit method']}{edit_g}) | {r['edit SSIM']:.2f} / "
                    f"{r['edit RMSE']:.0f} |")
    return ("| config | test bpd | sample fidelity, best setting | FD there | edit hit-rate, "
            "best that keeps the person | edit SSIM / RMSE |\n"
            "| --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows))


RENDERERS: dict[str, Callable[[str], str]] = {
    "conditioning-summary": conditioning_summary,
    "person-samples": person_samples,
    "person-sweep": person_sweep,
    "person-edits": person_edits,
    "run-progress": run_progress,
}


def _rendered(text: str, where: Path) -> str:
    def block(m: re.Match) -> str:
        name, arg = m.group(2), m.group(3)
        if name not in RENDERERS:
            raise ValueError(f"{where}: unknown quoted block {name!r}; known: {sorted(RENDERERS)}")
        return f"{m.group(1)}{RENDERERS[name](arg)}\n{m.group(5)}"

    return BLOCK.sub(block, text)


def render(files: tuple[str, ...] = DOCUMENTS, root: Path = REPO_ROOT) -> list[Path]:
    """Rewrite every quoted block of ``files`` from its results; returns the files changed."""
    changed = []
    for name in files:
        path = Path(root) / name
        text = path.read_text()
        new = _rendered(text, path)
        if new != text:
            atomic_write(path, lambda tmp, new=new: tmp.write_text(new))
            changed.append(path)
    return changed


def stale(files: tuple[str, ...] = DOCUMENTS, root: Path = REPO_ROOT) -> list[str]:
    """``file: block`` for every quoted block whose text differs from its results."""
    out = []
    for name in files:
        path = Path(root) / name
        text = path.read_text()
        for m in BLOCK.finditer(text):
            if _rendered(m.group(0), path) != m.group(0):
                out.append(f"{name}: {m.group(2)} {m.group(3) or ''}".strip())
    return out
