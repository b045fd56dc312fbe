"""Figures quoted in the prose, and the committed results they come from.

Two kinds. **Rendered blocks**: a markdown file marks a table ``<!-- figures: NAME ARG -->`` ...
``<!-- /figures -->``; ``render`` rewrites every block from the result file ``RENDERERS[NAME]``
reads (ARG: a model directory), and ``stale`` lists the blocks whose text no longer matches
(``python -m bplf render-docs`` brings them back together). **Figures in sentences**: each is
listed in ``bplf.research.quotes`` as a ``Quote`` (the document, a snippet of its text with the
figure in braces, ``"FER-2013 {5.314}"``, and a function that reads the figure from a result
file); numbers that are settings or names (15% label dropout, exercise 1.1) as ``Setting``s.
``problems`` says where a snippet is missing, where a figure no longer equals its source at the
precision it is written with, and where a document has a number (a decimal or a percentage)
that no quote or setting accounts for. Whole numbers (counts, steps, seconds) are not scanned;
code, math, headings, links and the rendered blocks are not prose. A test fails on any of them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bplf.pretrained import LIKELIHOOD_DIR, SAMPLER_DIR, read_evaluation
from bplf.research import noise
from bplf.research.conditioning import summary
from bplf.research.experiments import read_fidelity
from bplf.research.metrics.fidelity import CEILING
from bplf.settings import REPO_ROOT
from bplf.utils import atomic_write

BLOCK = re.compile(r"(<!-- figures: (\S+)(?: (\S+))? -->\n)(.*?)(<!-- /figures -->)", re.S)
#: the prose (markdown files, and notebooks' markdown cells): its figures are checked and its
#: markdown files' blocks rendered
DOCUMENTS = ("README.md", "docs/teaching.md", "checkpoints/bplf-emotion48-sampler/README.md",
             "checkpoints/bplf-emotion48/README.md", "checkpoints/bplf-emotion48-v1/README.md",
             "checkpoints/emotion-cnn/README.md", "results/ablations/README.md",
             "notebooks/01_build_emotion_set.ipynb",
             "notebooks/02_change_of_variables.ipynb",
             "notebooks/03_coupling_and_pca_layers.ipynb", "notebooks/04_train_bplf.ipynb",
             "notebooks/05_samples_and_expressions.ipynb", "notebooks/06_ablations.ipynb")

#: a number as the prose writes a figure: a decimal (3.4, 5.314, 3.4e-4) or a percentage
NUMBER = re.compile(r"(?<![\w.\-/])(?:\d[\d,]*\.\d+(?:e-\d+)?%?|\d+%)(?![\w.]*\d)")
#: what is not prose: fenced code, inline code, math, headings, links' targets, comments and
#: the rendered tables
NOT_PROSE = re.compile(r"```.*?```|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$|^#+ [^\n]*$|\]\([^)]*\)"
                       r"|<!-- figures:.*?<!-- /figures -->|<!--.*?-->|https?://\S+",
                       re.S | re.M)


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


def _find(report: dict, temperature: float, guidance: str,
          denoised: bool = False) -> dict | None:
    return next((r for r in _own(report) if r["temperature"] == temperature
                 and r["guidance"] == guidance and bool(r.get("denoised")) == denoised), None)


def person_samples(model_dir: str) -> str:
    """Real test faces, the recommended sample setting, unguided samples and (where measured)
    the setting recommended before the face metrics (couplings guided 8), as a table; denoised
    as the recommended setting is."""
    report = read_evaluation(REPO_ROOT / model_dir)
    real = next(r for r in report["fidelity"] if r["generator"] == CEILING)
    best = report["recommended"]["samples"]
    denoised = bool(best.get("denoised"))
    rows = [_sample_row(f"real test faces ({real['n']:,})", real)]
    chosen = _find(report, best["temperature"], best["guidance"], denoised)
    rows.append(_sample_row(f"**recommended**: T {best['temperature']:g}, {best['guidance']}"
                            + (", denoised" if denoised else ""), chosen))
    for t, g, name in ((0.7, "unguided", "T 0.7, unguided"),
                       (0.7, "couplings 8", "before: T 0.7, couplings 8")):
        row = _find(report, t, g, denoised)
        if row is not None and row is not chosen:
            rows.append(_sample_row(name + (", denoised" if denoised else ""), row))
    n = _own(report)[0]["n"]
    return (f"{SAMPLE_HEADER}\n" + "\n".join(rows) + f"\n\n{n:,} samples per setting "
            f"({n // 7} per emotion).")


def person_sweep(model_dir: str) -> str:
    """Every sample setting of the evaluation: face, reading and joint rates, diversity."""
    report = read_evaluation(REPO_ROOT / model_dir)
    rows = [_sample_row(f"T {r['temperature']:g}, {r['guidance']}"
                        + (", denoised" if r.get("denoised") else ""), r)
            for r in sorted(_own(report), key=lambda r: (r["temperature"], r["guidance"],
                                                         bool(r.get("denoised"))))]
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
                  and e["guidance"] == best["guidance"] and e["intensity"] == best["intensity"]
                  and bool(e.get("denoised")) == bool(best.get("denoised")))
    rows.append(_edit_row(f"**recommended**: {best['method']}, {best['guidance']}, intensity "
                          f"{best['intensity']:g}" + (", denoised" if best.get("denoised")
                                                      else ""), chosen))
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


def _target_figure(target: str, v: float) -> str:
    if math.isnan(v):
        return "none"
    if "bpd" in target:
        return f"{v:.3f}"
    return _pct(v) if "rate" in target else f"{v:.2f}"


SOURCE_NAMES = {"fer2013": "FER-2013 (PrivateTest)", "ckplus": "CK+", "jaffe": "JAFFE"}


def test_bpd(model_dir: str) -> str:
    """A model's test bpd per source (marginal, conditional) and its own classifier's accuracy
    (overall / balanced), and the marginal bpd of all test faces, as a table."""
    report = read_evaluation(REPO_ROOT / model_dir)
    rows = []
    for source, name in SOURCE_NAMES.items():
        r = report["sources"][source]
        acc = r["generative_accuracy"]
        bpd = f"**{r['marginal_bpd']:.3f}**" if source == "fer2013" else f"{r['marginal_bpd']:.3f}"
        rows.append(f"| {name} | {r['n']:,} | {bpd} | {r['conditional_bpd']:.3f} | "
                    f"{_pct(acc['accuracy'])} / {_pct(acc['balanced_accuracy'])} |")
    total = sum(r["n"] for r in report["sources"].values())
    rows.append(f"| all | {total:,} | {report['overall_marginal_bpd']:.3f} | | |")
    return ("| test split | faces | marginal bpd | conditional bpd | flow's own classifier: "
            "accuracy / balanced |\n| --- | --- | --- | --- | --- |\n" + "\n".join(rows))


def sampler_targets(model_dir: str) -> str:
    """The sampler in ``model_dir`` against part 1's model (the likelihood model), target by
    target (``bplf.research.noise.targets``)."""
    table = noise.targets(read_evaluation(REPO_ROOT / model_dir), read_evaluation(LIKELIHOOD_DIR))
    rows = []
    for target, r in table.iterrows():
        verdict = "yes" if r["met"] else (
            "**no**" + (f", missed by {_target_figure(target, r['missed by'])}"
                        .replace("%", " points") if 0 < r["missed by"] < math.inf else ""))
        rows.append(f"| {target} | {r['bound']} | {_target_figure(target, r['part 1'])} | "
                    f"**{_target_figure(target, r['sampler'])}** | {verdict} |")
    return ("| target | bound | part 1 (the likelihood model) | the sampler | met |\n"
            "| --- | --- | --- | --- | --- |\n" + "\n".join(rows))


def sampler_progress(folder: str) -> str:
    """The sampler's unguided samples at T 0.7 along its run (``bplf.research.noise.progress``:
    the checkpoints' evaluations in ``folder``)."""
    table = noise.progress(REPO_ROOT / folder, SAMPLER_DIR, read_evaluation(LIKELIHOOD_DIR))
    rows = [f"| {step:,}" + (" (the likelihood model, as drawn)" if step == 0 else "")
            + f" | {_pct(r['face rate'])} | {_pct(r['joint rate'])} | {r['FD']:.2f} |"
            for step, r in table.iterrows()]
    return ("| step | face rate | joint rate | FD |\n| --- | --- | --- | --- |\n"
            + "\n".join(rows))


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
    "sampler-progress": sampler_progress,
    "sampler-targets": sampler_targets,
    "test-bpd": test_bpd,
}


def _rendered(text: str, where: Path) -> str:
    def block(m: re.Match) -> str:
        name, arg = m.group(2), m.group(3)
        if name not in RENDERERS:
            raise ValueError(f"{where}: unknown quoted block {name!r}; known: {sorted(RENDERERS)}")
        return f"{m.group(1)}{RENDERERS[name](arg)}\n{m.group(5)}"

    return BLOCK.sub(block, text)


def _markdown(files: tuple[str, ...]) -> list[str]:
    return [name for name in files if name.endswith(".md")]


def render(files: tuple[str, ...] = DOCUMENTS, root: Path = REPO_ROOT) -> list[Path]:
    """Rewrite every quoted block of ``files`` from its results; returns the files changed."""
    changed = []
    for name in _markdown(files):
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
    for name in _markdown(files):
        path = Path(root) / name
        text = path.read_text()
        for m in BLOCK.finditer(text):
            if _rendered(m.group(0), path) != m.group(0):
                out.append(f"{name}: {m.group(2)} {m.group(3) or ''}".strip())
    return out


@dataclass(frozen=True)
class Quote:
    """A figure in ``document``: ``snippet`` is its text with the figure in braces; ``value``
    reads it from a committed result (a rate is written as a percentage when the figure
    ends in %)."""

    document: str
    snippet: str
    value: Callable[[], float]


@dataclass(frozen=True)
class Setting:
    """A number in ``document`` that is a setting or a name, not a result (``snippet`` as in
    ``Quote``; every occurrence is covered)."""

    document: str
    snippet: str


def prose(document: str, root: Path = REPO_ROOT) -> str:
    """The text of a document whose numbers are checked: a notebook's markdown cells joined,
    with everything ``NOT_PROSE`` blanked out (offsets kept)."""
    path = Path(root) / document
    text = path.read_text()
    if path.suffix == ".ipynb":
        cells = json.loads(text)["cells"]
        text = "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return NOT_PROSE.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)


def written(text: str, value: float) -> str:
    """``value`` written as ``text`` writes a figure: as many decimals, a percentage when it
    ends in %, thousands separators, a power of ten."""
    percent = text.endswith("%")
    core = text.rstrip("%").replace(",", "")
    v = 100 * value if percent else value
    if "e" in core:
        mantissa, exponent = core.split("e")
        digits = len(mantissa.split(".")[1]) if "." in mantissa else 0
        m, e = f"{v:.{digits}e}".split("e")
        out = f"{m}e{int(e)}"
    else:
        digits = len(core.split(".")[1]) if "." in core else 0
        out = f"{v:,.{digits}f}" if "," in text else f"{v:.{digits}f}"
    return out + ("%" if percent else "")


def _spans(text: str, snippet: str) -> list[tuple[int, int]]:
    """Where the braced part of ``snippet`` is in ``text``, at every occurrence."""
    before, rest = snippet.split("{", 1)
    figure, after = rest.split("}", 1)
    whole = before + figure + after
    return [(m.start() + len(before), m.start() + len(before) + len(figure))
            for m in re.finditer(re.escape(whole), text)]


def problems(quotes: list[Quote], settings: list[Setting], documents: tuple[str, ...] = DOCUMENTS,
             root: Path = REPO_ROOT) -> list[str]:
    """Every disagreement between the prose and the results: a snippet not found, a figure
    that differs from its source, a number nobody accounts for."""
    out = []
    for document in documents:
        text = prose(document, root)
        covered: list[tuple[int, int]] = []
        for q in (q for q in quotes if q.document == document):
            spans = _spans(text, q.snippet)
            if not spans:
                out.append(f"{document}: {q.snippet!r} not found")
                continue
            covered += spans
            figure = q.snippet.split("{", 1)[1].split("}", 1)[0]
            try:
                value = float(q.value())
            except (OSError, KeyError, IndexError, ValueError, StopIteration) as err:
                out.append(f"{document}: {q.snippet!r}: its source cannot be read ({err!r})")
                continue
            if math.isnan(value) or written(figure, value) != figure:
                out.append(f"{document}: {q.snippet!r} says {figure}, its source "
                           f"{written(figure, value)}")
        for s in (s for s in settings if s.document == document):
            spans = _spans(text, s.snippet)
            if not spans:
                out.append(f"{document}: setting {s.snippet!r} not found")
            covered += spans
        for m in NUMBER.finditer(text):
            if not any(a <= m.start() and m.end() <= b for a, b in covered):
                line = text.count("\n", 0, m.start()) + 1
                context = text[max(0, m.start() - 40):m.end() + 20].replace("\n", " ")
                out.append(f"{document}:{line}: {m.group()} has no source ({context.strip()!r})")
    return out
