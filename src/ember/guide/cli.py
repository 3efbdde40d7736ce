"""``ember guide [N] [--out DIR] [--quick] [--quiz] [--part N]``.

- ``ember guide``: run every experiment and build the HTML site into ``--out`` (default
  ``ember-guide``); prints the path of its index.
- ``ember guide 24``: run question 24's experiment, print its table, checks and figure paths.
- ``ember guide --quiz [--part N]``: the quiz in the terminal.

Heavy modules (the experiments, matplotlib) are imported inside the command only.
"""

from __future__ import annotations


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "guide",
        help="the living guide: 75 questions answered by experiments (site, one run, or quiz)",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("number", nargs="?", type=int, help="run only this question's experiment")
    p.add_argument("--out", default=None, help="output folder (default: ./ember-guide)")
    p.add_argument("--quick", action="store_true", help="shrink every experiment (seconds)")
    p.add_argument("--quiz", action="store_true", help="quiz yourself in the terminal")
    p.add_argument("--part", type=int, choices=(1, 2, 3, 4), help="quiz only this part")
    p.add_argument("--count", type=int, default=10, help="questions per quiz round (default 10)")
    p.add_argument(
        "--progress", default=None, help="quiz progress file (default ~/.ember/quiz.json)"
    )
    p.add_argument("--seed", type=int, default=None, help="seed the quiz's random order")
    p.add_argument(
        "--no-run", action="store_true", help="quiz: do not run the experiments, only name them"
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    if args.quiz:
        from ember.guide.quiz import run_quiz

        run_quiz(
            part=args.part,
            count=args.count,
            progress_path=args.progress,
            seed=args.seed,
            run_experiments=not args.no_run,
        )
        return 0
    out = Path(args.out) if args.out else Path("ember-guide")
    if args.number is not None:
        return run_one(args.number, out, quick=args.quick)
    from ember.guide.site import build_site

    print(f"building the guide into {out.resolve()} ({'quick' if args.quick else 'full'} mode)")
    index = build_site(out, quick=args.quick)
    print(f"guide written: {index.resolve()}")
    return 0


def run_one(number: int, out_dir, quick: bool = False, print_fn=print) -> int:
    """Run one experiment into ``out_dir/qN`` and print it; 0 when its claim held, else 1."""
    from pathlib import Path

    from ember.guide.questions import get
    from ember.guide.registry import get_experiment

    q = get(number)
    print_fn(f"Q{q.number} (part {q.part}): {q.title}")
    exp = get_experiment(number)
    if exp is None:
        import textwrap

        print_fn(textwrap.fill(q.answer, 88, initial_indent="  ", subsequent_indent="  "))
        print_fn("(this question has no experiment)")
        return 0
    print_fn(f"claim: {exp.claim}")
    result = exp.run(quick=quick, out_dir=Path(out_dir) / f"q{number}", catch=True)
    print_fn("")
    print_fn(result.format_table())
    if result.notes:
        print_fn("")
        print_fn(result.notes)
    print_fn("")
    print_fn(result.format_checks())
    for fig in result.figures:
        print_fn(f"figure: {Path(fig).resolve()}")
    verdict = "the claim held" if result.passed else "the claim did NOT hold"
    print_fn(f"{verdict} ({result.seconds:.2f} s, {'quick' if quick else 'full'} mode)")
    if result.error:
        print_fn(result.error)
    return 0 if result.passed else 1
