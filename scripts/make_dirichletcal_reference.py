"""Write tests/calibrate/data/dirichletcal_reference.json: dirichletcal's fitted weights on fixed data.

dirichletcal 0.5.3 (the authors' package for Kull et al. 2019) needs Python >= 3.12 and jax, so the
test suite cannot import it everywhere; this script, run once where it imports, stores what the
package fits, and tests/calibrate/test_dirichlet.py checks lossbench's fit against it on every run.

    pip install jax jaxlib && pip install --no-deps dirichletcal==0.5.3   # (--ignore-requires-python on 3.11)
    python scripts/make_dirichletcal_reference.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "calibrate" / "data" / "dirichletcal_reference.json"
SETTINGS = ((0.0, 0.0), (1e-2, 1e-2), (1.0, 0.5))


def main() -> None:
    import dirichletcal
    from dirichletcal import FullDirichletCalibrator

    rng = np.random.default_rng(0)
    n, k = 200, 4
    z = np.round(rng.normal(size=(n, k)) * 2.5, 6)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    # labels drawn from a distribution the model gets partly wrong: 70% p, 30% p shifted by one class
    y = np.array([rng.choice(k, p=0.7 * pi + 0.3 * np.roll(pi, 1)) for pi in p])
    fits = []
    for reg_lambda, reg_mu in SETTINGS:
        cal = FullDirichletCalibrator(reg_lambda=reg_lambda, reg_mu=reg_mu, reg_norm=True, ref_row=True)
        cal.fit(p, y)
        fits.append({"reg_lambda": reg_lambda, "reg_mu": reg_mu,
                     "weights": np.round(np.asarray(cal.weights), 10).tolist()})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "source": f"dirichletcal {getattr(dirichletcal, '__version__', '0.5.3')}"
                  " FullDirichletCalibrator(reg_norm=True, ref_row=True), MIT licence;"
                  " written by scripts/make_dirichletcal_reference.py",
        "logits": z.tolist(), "labels": y.tolist(), "fits": fits,
    }) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
