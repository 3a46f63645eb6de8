"""Step *report*: the pooled figures and the warnings of a run, printed the same way by every command."""

from __future__ import annotations


def print_report(report: dict, console) -> None:
    """The pooled figures, and per database when there are several."""
    m = report["overall"]
    console.print(f"LOSO pooled over {report['n_samples']} clips: accuracy {m['accuracy']:.3f}  "
                  f"UF1 {m['uf1']:.3f}  UAR {m['uar']:.3f}")
    for db, m in report["per_database"].items():
        console.print(f"  {db:<10} n={m['n']:<4} accuracy {m['accuracy']:.3f}  UF1 {m['uf1']:.3f}  UAR {m['uar']:.3f}")


def print_warnings(warnings, console, limit: int = 10) -> None:
    """Each warning as one yellow line (at most ``limit``, then how many more)."""
    from rich.markup import escape

    for w in warnings[:limit]:
        console.print(f"[yellow]warning:[/] {escape(w)}", soft_wrap=True, highlight=False)
    if len(warnings) > limit:
        console.print(f"[yellow]warning:[/] ... and {len(warnings) - limit} more (all in results.json)", soft_wrap=True)
