"""`kflow eval`: train the feature classifier; score samples of a checkpoint or an .npz."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch


def run_eval(args) -> None:
    from ..metrics import FeatureClassifier, reference_features, score_features, train_classifier
    from ..metrics.evaluate import format_table, to_unit

    if args.eval_cmd == "train-classifier":
        m = train_classifier(args.dataset, args.out, epochs=args.epochs, image_size=args.image_size, root=args.root)
        print(f"classifier -> {args.out} (test accuracy {m.info.test_accuracy:.4f})")
        return
    clf_path = Path(args.classifier)
    if not clf_path.is_file():
        raise FileNotFoundError(f"--classifier {clf_path} does not exist; train it with `kflow eval train-classifier`")
    clf = FeatureClassifier.load(clf_path)
    info = clf.info
    source = Path(args.source)
    if source.suffix == ".npz":
        if not source.is_file():
            raise FileNotFoundError(f"{source} does not exist")
        with np.load(source, allow_pickle=False) as f:
            x = to_unit(f["x"]) if f["x"].dtype == np.uint8 else torch.from_numpy(f["x"]).float()
        what = f"{source} ({len(x)} samples)"
    else:
        from ..recipe import load_run, pick_device
        from ..sampling import sample

        device = pick_device(args.device)
        run = load_run(source, device=device)
        out = sample(run.model, run.path, args.n, solver=args.solver, steps=args.steps, grid=args.grid, seed=args.seed,
                     device=device)
        x = out.x
        what = f"{source} step {run.step}, {args.solver} NFE {out.nfe}, seed {args.seed}"
    if tuple(x.shape[1:]) != (info.in_channels, info.image_size, info.image_size):
        raise ValueError(f"samples of shape {tuple(x.shape[1:])} do not fit the classifier "
                         f"({info.in_channels}, {info.image_size}, {info.image_size})")
    if not torch.isfinite(x).all():
        raise ValueError("the samples contain NaN/Inf; nothing to score")
    real, _ = reference_features(clf, clf_path, info.dataset, args.split, image_size=info.image_size)
    scores = score_features(clf.embed(x.clamp(-1, 1)), real)
    row = dict(scores.row(), source=what, classifier_test_accuracy=info.test_accuracy, reference=f"{info.dataset}/{args.split}")
    print(format_table([row], ["source", "fd", "precision", "recall", "n_fake", "n_real"]))
    print(f"classifier test accuracy {info.test_accuracy:.4f}; reference {info.dataset}/{args.split}")
    print(json.dumps(row))
    if args.json:
        Path(args.json).write_text(json.dumps(row, indent=2))
