"""`kflow eval`: train the feature classifier; score samples of a checkpoint or an .npz; the likelihood."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .args import nonneg_int, positive_int


def run_eval(args) -> None:
    from ..metrics import reference_features, score_features, train_classifier
    from ..metrics.evaluate import format_table

    if args.eval_cmd == "train-classifier":
        m = train_classifier(args.dataset, args.out, epochs=args.epochs, image_size=args.image_size, root=args.root)
        print(f"classifier -> {args.out} (test accuracy {m.info.test_accuracy:.4f})")
        return
    if args.eval_cmd == "likelihood":
        from .likelihood import run_likelihood

        return run_likelihood(args)
    if args.eval_cmd == "convert-inception":
        from ..metrics.inception import convert_inception_weights

        print(f"converted -> {convert_inception_weights(args.src, args.dst)}")
        return
    extractors = _extractors(args)
    source = Path(args.source)
    if source.suffix == ".npz":
        from ..data.datasets import load_npz

        x = load_npz(source).x  # the same dtype/range rule as training data
        what = f"{source} ({len(x)} samples)"
    else:
        from ..runs import load_run
        from ..sampling import sample
        from ..utils.devices import pick_device

        device = pick_device(args.device)
        run = load_run(source, device=device)
        out = sample(
            run.model,
            run.path,
            args.n,
            solver=args.solver,
            steps=args.steps,
            grid=args.grid,
            seed=args.seed,
            device=device,
        )
        x = run.to_image(out.x)
        what = f"{source} step {run.step}, {args.solver} NFE {out.nfe}, seed {args.seed}"
    if not torch.isfinite(x).all():
        raise ValueError("the samples contain NaN/Inf; nothing to score")
    row = {"source": what}
    for name, net, path, dataset, size in extractors:
        if name == "classifier" and tuple(x.shape[1:]) != (net.info.in_channels, size, size):
            raise ValueError(
                f"samples of shape {tuple(x.shape[1:])} do not fit the classifier "
                f"({net.info.in_channels}, {size}, {size})"
            )
        real, _ = reference_features(net, path, dataset, args.split, image_size=size or x.shape[-1])
        sc = score_features(net.embed(x.clamp(-1, 1)), real)
        if name == "classifier":
            row.update(sc.row(), classifier_test_accuracy=net.info.test_accuracy)
        else:
            row["fid"] = sc.fd
            if len(extractors) == 1:
                row.update(precision=sc.precision, recall=sc.recall)
            row.update(n_fake=sc.n_fake, n_real=sc.n_real)
        row["reference"] = f"{dataset}/{args.split}"
    keys = ["source"] + [k for k in ("fd", "fid", "precision", "recall", "n_fake", "n_real") if k in row]
    print(format_table([row], keys))
    if "classifier_test_accuracy" in row:
        print(f"classifier test accuracy {row['classifier_test_accuracy']:.4f}; reference {row['reference']}")
    print(json.dumps(row))
    if args.json:
        Path(args.json).write_text(json.dumps(row, indent=2))


def _extractors(args) -> list:
    """(name, network, weights path, dataset, image size) for each feature space asked for."""
    from ..metrics import FeatureClassifier

    out, dataset = [], args.dataset
    if args.classifier:
        clf_path = Path(args.classifier)
        if not clf_path.is_file():
            raise FileNotFoundError(
                f"--classifier {clf_path} does not exist; train it with `kflow eval train-classifier`"
            )
        clf = FeatureClassifier.load(clf_path)
        dataset = dataset or clf.info.dataset
        out.append(("classifier", clf, clf_path, dataset, clf.info.image_size))
    if args.inception:
        from ..metrics.inception import InceptionFeatures

        if dataset is None:
            raise ValueError("--inception needs --dataset (or a --classifier, whose dataset is used)")
        out.append(
            ("inception", InceptionFeatures.load(args.inception), Path(args.inception), dataset, args.image_size)
        )
    if not out:
        raise ValueError(
            "give --classifier (from `kflow eval train-classifier`) and/or --inception (local FID weights)"
        )
    return out


def add_parser(sub) -> None:
    from ..config import CHOICES, SampleConfig

    sc_defaults = SampleConfig()
    e = sub.add_parser("eval", help="train the feature classifier, or score samples (FD, precision, recall)")
    esub = e.add_subparsers(dest="eval_cmd", required=True)
    tc = esub.add_parser("train-classifier", help="train the dataset classifier whose features give FD")
    tc.add_argument("--dataset", default="fashion_mnist", help="dataset name (see data.name)")
    tc.add_argument("--root", default=None, help="dataset folder (folder/npz datasets)")
    tc.add_argument("--image-size", type=positive_int, default=32, help="images are padded/resized to this")
    tc.add_argument("--epochs", type=positive_int, default=3, help="training epochs")
    tc.add_argument("--out", default="classifiers/fashion_mnist.safetensors", help="classifier file (safetensors)")
    sc = esub.add_parser("score", help="FD / precision / recall of a checkpoint's samples or of an .npz")
    sc.add_argument("source", help="checkpoint, run folder, or .npz of uint8 samples (key x)")
    sc.add_argument("--classifier", default=None, help="from `kflow eval train-classifier`: FD, precision, recall")
    sc.add_argument(
        "--inception", default=None, help="local Inception-v3 FID weights (safetensors, pytorch-fid layout): adds FID"
    )
    sc.add_argument("--dataset", default=None, help="reference dataset (default: the classifier's)")
    sc.add_argument(
        "--image-size", type=positive_int, default=None, help="reference image size (default: the samples')"
    )
    sc.add_argument("--split", default="test", help="reference split")
    sc.add_argument("--n", type=positive_int, default=5000, help="samples drawn from a checkpoint")
    sc.add_argument("--solver", default=sc_defaults.solver, choices=CHOICES["sample.solver"], help="ODE solver")
    sc.add_argument("--steps", type=positive_int, default=sc_defaults.steps, help="solver steps")
    sc.add_argument("--grid", default=sc_defaults.grid, choices=CHOICES["sample.grid"], help="k grid")
    sc.add_argument("--seed", type=nonneg_int, default=0, help="noise seed")
    sc.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    sc.add_argument("--json", default=None, help="also write the result here")
    from .likelihood import add_parser as add_likelihood

    add_likelihood(esub)
    ci = esub.add_parser("convert-inception", help="pytorch-fid .pth weights -> safetensors (loaded weights-only)")
    ci.add_argument("src", help="pytorch-fid weights (.pth)")
    ci.add_argument("dst", help="output .safetensors")
    e.set_defaults(func=run_eval)
