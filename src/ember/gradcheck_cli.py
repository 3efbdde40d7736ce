"""``ember gradcheck [--model mlp|cnn|rnn|lstm|gru|embedding|all]``: every weight of a small
built-in model checked numerically in float64, with a table of the relative error per layer.

The checking itself is ``ember.guide.model_gradcheck(model, x, y, loss)``, usable on any model.
"""

from __future__ import annotations

BUILTINS = ("mlp", "cnn", "rnn", "lstm", "gru", "embedding")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "gradcheck",
        help="check a whole model's gradients against finite differences (float64)",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--model", default="all", choices=(*BUILTINS, "all"), help="which model")
    p.add_argument("--samples", type=int, default=30, help="elements checked per weight (0: all)")
    p.add_argument("--eps", type=float, default=1e-6, help="finite-difference step")
    p.add_argument("--tol", type=float, default=1e-6, help="largest relative error that passes")
    p.add_argument("--seed", type=int, default=0, help="seed of the model, data and samples")
    p.add_argument(
        "--inference", action="store_true", help="check inference mode instead of training mode"
    )
    p.set_defaults(func=run)


def run(args, print_fn=print) -> int:
    """Check the chosen model(s); 0 when every gradient agrees, else 1."""
    from ember.guide.gradients import builtin_model, model_gradcheck

    kinds = BUILTINS if args.model == "all" else (args.model,)
    ok = True
    for kind in kinds:
        model, x, y, loss = builtin_model(kind, seed=args.seed)
        report = model_gradcheck(
            model, x, y, loss,
            eps=args.eps, samples=args.samples or None, tol=args.tol,
            training=not args.inference, seed=args.seed,
        )  # fmt: skip
        mode = "inference" if args.inference else "training"
        print_fn(f"== {kind}: {model.count_params()} parameters, {mode} mode, float64")
        print_fn(report.format())
        print_fn("")
        ok = ok and report.passed
    return 0 if ok else 1
