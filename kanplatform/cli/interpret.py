"""``kanplatform interpret RUN_DIR``: prune a trained KAN, fit a formula, print it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

# shown at the end of `kanplatform interpret --help`
EXAMPLES = (
    "kanplatform interpret runs/<run>",
    "kanplatform interpret runs/<run> --lib x,x^2,sin,exp --max-terms 3",
    "kanplatform interpret runs/<run> --prune no --r2-threshold 0.95",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``kanplatform interpret`` (light imports only)."""
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory of a KAN")
    parser.add_argument("--prune", choices=["yes", "no"], default="yes",
                        help="prune nodes and edges before fitting (default: yes)")
    parser.add_argument("--node-threshold", type=float, default=1e-2,
                        help="hidden nodes scoring at most this are removed (default 1e-2)")
    parser.add_argument("--edge-threshold", type=float, default=3e-2,
                        help="edges scoring below this are masked (default 3e-2)")
    parser.add_argument("--method", choices=["attribution", "l1"], default="attribution",
                        help="importance scores: KAN 2.0 attribution or the paper's L1 rule")
    parser.add_argument("--retrain-steps", type=int, default=20,
                        help="LBFGS steps on the pruned KAN before fitting (default 20)")
    parser.add_argument("--lib", default=None,
                        help="comma-separated symbolic functions, e.g. x,x^2,sin,exp "
                             "(default: the whole library)")
    parser.add_argument("--r2-threshold", type=float, default=0.99,
                        help="edges whose best fit has a lower R² stay splines (default 0.99)")
    parser.add_argument("--affine-steps", type=int, default=20,
                        help="LBFGS steps on the formula's constants (default 20)")
    parser.add_argument("--layerwise-steps", type=int, default=0,
                        help="fit layer by layer, retraining later layers this many LBFGS "
                             "steps after each (helps products); 0 fits all at once")
    parser.add_argument("--digits", type=int, default=4, help="decimals of the constants")
    parser.add_argument("--max-terms", type=int, default=0, metavar="N",
                        help="short form: print each formula's N largest additive terms and "
                             "say how many more there are (default 0: the long form, all)")
    parser.add_argument("--tracking", choices=["offline", "online", "disabled"], default=None,
                        help="W&B mode (default: the run's tracking.mode)")


def main(args: argparse.Namespace) -> int:
    """Run :func:`kanplatform.interpret.interpret_run` and print the formula; exit code."""
    lib = [s.strip() for s in args.lib.split(",") if s.strip()] if args.lib else None
    return interpret_and_print(
        args.run_dir, prune=args.prune == "yes", node_threshold=args.node_threshold,
        edge_threshold=args.edge_threshold, method=args.method,
        retrain_steps=args.retrain_steps, lib=lib, r2_threshold=args.r2_threshold,
        affine_steps=args.affine_steps, layerwise_steps=args.layerwise_steps,
        digits=args.digits, tracking=args.tracking, max_terms=args.max_terms)


def interpret_and_print(run_dir: str | Path, max_terms: int = 0, **options: Any) -> int:
    """:func:`~kanplatform.interpret.interpret_run` (its defaults where ``options`` says
    nothing), printing its progress on stderr, then the widths, the formula (its ``max_terms``
    largest terms when > 0), every leftover spline edge explained and the errors; 0, or 1
    with the reason."""
    from kanplatform.interpret import interpret_run

    def progress(line: str) -> None:
        print(f"interpret: {line}", file=sys.stderr, flush=True)

    try:
        res = interpret_run(run_dir, progress=progress, **options)
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"interpret: {err}", file=sys.stderr)
        return 1
    m = res.metrics
    pruned = "" if res.width_after != res.width_before else f" (nothing pruned{_why(res)})"
    print(f"width {res.width_before} -> pruned {res.width_after}{pruned}")
    for line in res.formula:
        print(short_form(line, max_terms))
    for note in spline_notes(res.edges, options.get("r2_threshold", 0.99)):
        print(note)
    print(f"test RMSE: model {m['model/test_rmse']:.3e}, pruned {m['pruned/test_rmse']:.3e}, "
          f"formula {m['symbolic/test_rmse']:.3e}")
    for note in res.warnings:
        if "kept as a spline" not in note:  # those are explained with their edge above
            print(f"warning: {note}", file=sys.stderr)
    print(f"written: {res.run_dir / 'interpret'}")
    return 0


def _why(res: Any) -> str:
    """Why nothing pruned, when the run says: it trained without sparsity regularisation."""
    import yaml

    try:
        lamb = (yaml.safe_load((res.run_dir / "config.yaml").read_text()).get("reg") or {}).get(
            "lamb", 0)
    except (OSError, yaml.YAMLError, AttributeError):
        return ""
    return ("" if lamb else ": the run trained with reg.lamb 0, so no edge faded out; train "
            "with reg.lamb > 0, e.g. configs/experiment/interpret.yaml")


def short_form(line: str, max_terms: int) -> str:
    """``y1 = a + b + c`` with only its ``max_terms`` largest additive terms (by the size of
    their constant factor) and a count of the rest; the whole line for ``max_terms <= 0``."""
    import sympy

    name, _, expr = line.partition(" = ")
    if max_terms <= 0 or not expr:
        return line
    try:
        terms = sympy.Add.make_args(sympy.sympify(expr))
    except (sympy.SympifyError, TypeError, SyntaxError):
        return line
    if len(terms) <= max_terms:
        return line
    ranked = sorted(terms, key=lambda t: -abs(float(t.as_coeff_Mul()[0])))
    kept = sympy.sstr(sympy.Add(*ranked[:max_terms]))
    rest = len(terms) - max_terms
    return (f"{name} = {kept} + ... ({rest} smaller term{'s' if rest > 1 else ''}; "
            "--max-terms 0 prints all)")


def spline_notes(edges: list[dict[str, Any]], r2_threshold: float) -> list[str]:
    """One line per edge the formula names ``phi_l_i_j`` (still a spline): which edge, the
    best fit's R², and why no library function was accepted."""
    notes = []
    for e in edges:
        if e["accepted"]:
            continue
        name = f"phi_{e['layer']}_{e['out']}_{e['in']}"
        where = f"layer {e['layer']}, input {e['in']} -> output {e['out']}"
        fn, r2 = e.get("function", "?"), float(e.get("r2", 0.0))
        if r2 < 0.05:
            why = ("no library function tracks it (R² ~0 for all): the edge is nearly flat or "
                   "noise; a higher --edge-threshold prunes it")
        else:
            why = (f"best fit {fn} reaches R² {r2:.4f} < --r2-threshold {r2_threshold}: the "
                   "spline has a shape the library lacks; widen --lib or lower the threshold")
        notes.append(f"  {name}(...) = edge {where}, a spline kept: {why}")
    return notes
