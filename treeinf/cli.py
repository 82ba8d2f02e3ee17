"""The ``treeinf`` command line."""
import argparse
import sys
from typing import Optional, Sequence


def _demo(args):
    """Train LightGBM on breast-cancer data and explain three predictions."""
    import numpy as np
    import lightgbm as lgb
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    from . import BoostIn

    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target.to_numpy()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, stratify=y, random_state=1)
    X_train = X_train.reset_index(drop=True)
    model = lgb.LGBMClassifier(n_estimators=100, num_leaves=15, learning_rate=0.1,
                               verbose=-1, random_state=0, n_jobs=args.n_jobs or -1)
    model.fit(X_train, y_train)
    explainer = BoostIn(n_jobs=args.n_jobs).fit(model, X_train, y_train)

    names = list(data.target_names)
    proba = model.predict_proba(X_test)[:, 1]
    # explain a confident correct, an uncertain, and the most wrong prediction
    err = np.abs(proba - y_test)
    picks = [int(np.argmin(err)), int(np.argmin(np.abs(proba - 0.5))), int(np.argmax(err))]
    picks = list(dict.fromkeys(picks))
    Xq, yq = X_test.iloc[picks], y_test[picks]
    k = args.top
    helpful = explainer.get_top_influence(Xq, yq, k=k, kind="helpful")
    harmful = explainer.get_top_influence(Xq, yq, k=k, kind="harmful")
    shown = list(X.columns[np.argsort(-model.feature_importances_)[:3]])

    print(f"treeinf demo: LightGBM ({model.n_estimators} trees, {model.num_leaves} leaves) "
          f"on breast cancer, {len(X_train)} training rows, test accuracy "
          f"{np.mean((proba > 0.5) == y_test):.3f}")
    print("Influence = change in the test row's log loss if the training row were "
          "removed (positive = helpful).\n")
    for q, row in enumerate(picks):
        print(f"Test row {X_test.index[row]}: true '{names[y_test[row]]}', "
              f"P({names[1]}) = {proba[row]:.3f}")
        for title, (idx, val) in (("helpful", helpful), ("harmful", harmful)):
            print(f"  top {k} {title} training rows:")
            print(f"    {'row':>5} {'label':>10} {'influence':>12}  " +
                  "  ".join(f"{c[:22]:>22}" for c in shown))
            for i, v in zip(idx[q], val[q]):
                feats = "  ".join(f"{X_train.at[int(i), c]:>22.4g}" for c in shown)
                print(f"    {int(i):>5} {names[y_train[i]]:>10} {v:>12.4e}  {feats}")
        print()
    return 0


def build_parser():
    from . import __version__
    parser = argparse.ArgumentParser(
        prog="treeinf", description="Training-data influence for tree ensembles.")
    parser.add_argument("--version", action="version", version=f"treeinf {__version__}",
                        help="print treeinf's version and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="explain three LightGBM predictions with BoostIn")
    demo.add_argument("--top", type=int, default=5, help="training rows shown per kind")
    demo.add_argument("--n-jobs", type=int, default=None, help="threads (default: all)")
    demo.set_defaults(func=_demo)
    from ._bench_cli import add_parser as add_bench
    add_bench(sub)
    from ._explain_cli import add_explain_parser
    add_explain_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .exceptions import TreeInfError
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TreeInfError as exc:   # a user error: the message, not a traceback
        print(f"treeinf {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:       # output piped into e.g. `head`, which exited
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
