"""The default `lossbench run` written by hand: what scripts/bench_overhead.py compares the command to.

The same job as `lossbench run` with no overrides: scikit-learn's digits (read from the CSV file
scikit-learn ships, as lossbench reads it), 25% held out as the test set and 10% of the rest as
validation, the 64-256-256-10 ReLU MLP, cross-entropy, SGD (lr 0.1, momentum 0.9, weight decay
5e-4) with cosine annealing over 30 epochs, batches of 64, validation and test accuracy after every
epoch, the final test accuracy printed. Nothing else: no config, no records, no checks.
``--temperature``: also temperature scaling as the default run does it (T fitted on the validation
logits by scipy's bounded search of the NLL over log T), and the test NLL before and after.

    python scripts/overhead_handwritten.py
    python scripts/overhead_handwritten.py --temperature
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

EPOCHS, BATCH, SEED = 30, 64, 0


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    folder = Path(importlib.util.find_spec("sklearn").submodule_search_locations[0])
    with gzip.open(folder / "datasets" / "data" / "digits.csv.gz", "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    return torch.as_tensor(table[:, :-1], dtype=torch.float32) / 16.0, torch.as_tensor(table[:, -1]).long()


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    x, y = digits()
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    n_test = round(0.25 * len(y))
    test, pool = perm[:n_test], perm[n_test:]
    n_val = round(0.1 * len(pool))
    val, train = pool[:n_val], pool[n_val:]
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS)
    g = torch.Generator().manual_seed(SEED)
    for _ in range(EPOCHS):
        model.train()
        order = train[torch.randperm(len(train), generator=g)]
        for i in range(0, len(order), BATCH):
            idx = order[i:i + BATCH]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        model.eval()
        with torch.no_grad():
            accs = [(model(x[s]).argmax(1) == y[s]).float().mean().item() for s in (val, test)]
    print(f"test accuracy {accs[1]:.4f}")
    if "--temperature" in sys.argv:
        from scipy.optimize import minimize_scalar

        with torch.no_grad():
            z_val, z_test = model(x[val]).double(), model(x[test]).double()
        fit = minimize_scalar(lambda log_t: F.cross_entropy(z_val / math.exp(log_t), y[val]).item(),
                              bounds=(math.log(1e-2), math.log(1e2)), method="bounded",
                              options={"xatol": 1e-6})
        t = math.exp(fit.x)
        before, after = (F.cross_entropy(z_test / s, y[test]).item() for s in (1.0, t))
        print(f"temperature {t:.3f}: test NLL {before:.4f} -> {after:.4f}")


if __name__ == "__main__":
    main()
