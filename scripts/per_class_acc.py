"""Per-class test accuracy of saved LeNet-5 weights on MNIST: which classes a run never learned.

Used to explain the menon_mnist Linear cells (benchmarks/menon_mnist.md): a run at 87% has one digit at
0%. Takes lossbench run folders (their ``model_final.pt``) and, with ``--state-dict``, any other LeNet-5
state dict whose tensors come in the same order (e.g. the [Re] code's ``final_model.pt``, key
``model``), so both codes' models are read by one evaluation.

    python scripts/per_class_acc.py --data-dir ../shared/data outputs/reproduce/menon_mnist/linear-sym60-s0
"""

from __future__ import annotations

import argparse

import torch

from lossbench.data.transforms import BatchTransform
from lossbench.data.vision import mnist
from lossbench.models.lenet import LeNet5


def per_class(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], float]:
    """(accuracy of each class in %, overall accuracy in %)."""
    model.eval()
    with torch.no_grad():
        pred = model(x).argmax(1)
    classes = [100 * (pred[y == c] == c).float().mean().item() for c in range(int(y.max()) + 1)]
    return classes, 100 * (pred == y).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="lossbench run folders holding model_final.pt")
    parser.add_argument("--state-dict", action="append", default=[], help="another code's LeNet-5 weights")
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args()
    split = mnist(data_dir=args.data_dir, val_size=0)
    x, y = BatchTransform(split)(split.x_test, train=False), split.y_test
    weights = [(run, torch.load(f"{run}/model_final.pt", weights_only=True)) for run in args.runs]
    for path in args.state_dict:
        state = torch.load(path, weights_only=False, map_location="cpu")  # a file you produced yourself
        weights.append((path, state.get("model", state)))
    for name, state in weights:
        model = LeNet5(input_shape=(1, 28, 28), num_classes=10)
        model.load_state_dict(dict(zip(model.state_dict().keys(), state.values(), strict=True)))
        classes, overall = per_class(model, x, y)
        by_class = " ".join(f"{c}:{a:.0f}" for c, a in enumerate(classes))
        print(f"{name}: {overall:.2f}% overall; by class {by_class}")


if __name__ == "__main__":
    main()
