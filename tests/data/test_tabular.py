"""Tabular datasets: every reader on fabricated files, refusals in one line, scaling on the training rows
only, holdouts, fixed splits and folds, and the eight shared sets by name."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from sklearn.datasets import dump_svmlight_file
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from lossbench.data import DATASETS
from lossbench.data.readers import TabularFileError
from lossbench.data.subset import builder_config
from lossbench.data.tabular import tabular

SHARED = {  # name: (rows, features, classes), as shared/data/tabular/README.md gives them
    "vehicle": (846, 18, 4), "vowel": (990, 10, 11), "letter": (20000, 16, 26), "satellite": (6435, 36, 6),
    "dna": (3186, 180, 3), "glass": (214, 9, 6), "shuttle": (58000, 9, 7), "pima_diabetes": (768, 8, 2),
}


def _frame(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n rows: 3 features (the first a row id), labels 'cat' / 'dog' / 'emu' in turn."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([np.arange(n), rng.normal(5.0, 2.0, n), rng.uniform(-3, 9, n)])
    y = np.array(["cat", "dog", "emu"])[np.arange(n) % 3]
    return x, y


def _csv(path, x, y, label="species", extra: dict | None = None) -> str:
    columns = ["id", "f1", "f2", *(extra or {}), label]
    lines = [",".join(columns)]
    for i, row in enumerate(x):
        values = [f"{v:.17g}" for v in row] + [str(extra[k][i]) for k in (extra or {})] + [str(y[i])]
        lines.append(",".join(values))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _refusal(exc: pytest.ExceptionInfo, path, *words: str) -> None:
    message = str(exc.value)
    assert "\n" not in message and message.startswith(str(path)), message
    for word in words:
        assert word in message, message


# ---------------------------------------------------------------------------------------------- readers


def test_csv_with_string_labels_gets_sorted_stable_classes(tmp_path):
    x, y = _frame()
    split = tabular(_csv(tmp_path / "zoo.csv", x, y), label="species", scaling="none")
    assert split.class_names == ["cat", "dog", "emu"] and split.num_classes == 3 and split.name == "zoo"
    rows = torch.cat([split.x_train, split.x_val, split.x_test])[:, 0].long()  # the id column
    labels = torch.cat([split.y_train, split.y_val, split.y_test])
    assert torch.equal(labels, torch.as_tensor(np.arange(60) % 3)[rows])
    shuffled = np.random.default_rng(1).permutation(60)  # another row order: the same class indices
    again = tabular(_csv(tmp_path / "zoo2.csv", x[shuffled], y[shuffled]), label="species", scaling="none")
    assert again.class_names == split.class_names
    record = split.extras["record"]
    assert record["file"].endswith("zoo.csv") and len(record["sha256"]) == 64 and record["rows"] == 60


def test_classes_pin_the_order_and_refuse_unknown_labels(tmp_path):
    x, y = _frame()
    path = _csv(tmp_path / "zoo.csv", x, y)
    split = tabular(path, label="species", classes=["emu", "cat", "dog"])
    assert split.class_names == ["emu", "cat", "dog"]
    assert set(split.y_test[split.x_test[:, 0].argsort()].tolist()) <= {0, 1, 2}
    with pytest.raises(TabularFileError) as exc:
        tabular(path, label="species", classes=["cat", "dog"])
    _refusal(exc, path, "'emu'", "not in dataset.classes")


def test_numeric_labels_sort_as_numbers(tmp_path):
    x, _ = _frame()
    y = np.array([2, 10, 1])[np.arange(60) % 3]
    split = tabular(_csv(tmp_path / "n.csv", x, y, label="label"))
    assert split.class_names == ["1", "2", "10"]


def test_svmlight_with_a_test_file(tmp_path):
    x, _ = _frame(80)
    y = np.arange(80) % 2 + 1  # LIBSVM's labels 1 and 2
    dump_svmlight_file(x[:60], y[:60], str(tmp_path / "train.scale"))
    dump_svmlight_file(x[60:], y[60:], str(tmp_path / "train.scale.t"))
    split = tabular(str(tmp_path / "train.scale"), test_path=str(tmp_path / "train.scale.t"), scaling="none",
                    val_size=0.25)
    assert split.class_names == ["1", "2"] and split.extras["record"]["format"] == "svmlight"
    assert (len(split.y_train), len(split.y_val), len(split.y_test)) == (45, 15, 20)
    assert torch.equal(split.x_test[:, 0], torch.arange(60, 80, dtype=torch.float32))


@pytest.mark.parametrize("keys", [("x", "y"), ("arr_0", "arr_1")])
def test_npz_with_labels_or_one_hot_rows(tmp_path, keys):
    x, _ = _frame()
    y = np.arange(60) % 3
    labels = y if keys[0] == "x" else np.eye(3)[y]  # the LDR code's files: np.savez(x, one_hot)
    np.savez(tmp_path / "d.npz", **{keys[0]: x, keys[1]: labels})
    split = tabular(str(tmp_path / "d.npz"), scaling="none")
    assert split.class_names == ["0", "1", "2"]
    ids = split.x_test[:, 0].long()
    assert torch.equal(split.y_test, torch.as_tensor(y)[ids])


@pytest.mark.parametrize("case, words", [
    ("missing_column", ["no column 'species'", "dataset.label"]),
    ("non_numeric", ["feature column 'f1' is not numeric", "row 4", "'heavy'"]),
    ("empty", ["the file is empty"]),
    ("header_only", ["no rows under the header"]),
    ("nan", ["missing or non-finite", "f2 (2 rows)"]),
    ("no_file", ["no such file"]),
    ("one_class", ["at least 2 classes"]),
    ("no_label", ["no value in the label column"]),
])
def test_bad_files_are_refused_in_one_line_naming_the_file(tmp_path, case, words):
    x, y = _frame(12)
    path = tmp_path / f"{case}.csv"
    if case == "missing_column":
        _csv(path, x, y, label="kind")
    elif case == "non_numeric":
        _csv(path, x, y)
        lines = path.read_text().splitlines()
        lines[3] = lines[3].replace(lines[3].split(",")[1], "heavy", 1)
        path.write_text("\n".join(lines) + "\n")
    elif case == "empty":
        path.write_text("")
    elif case == "header_only":
        path.write_text("id,f1,f2,species\n")
    elif case == "nan":
        x[[2, 5], 2] = np.nan
        _csv(path, x, y)
    elif case == "one_class":
        _csv(path, x, np.full(12, "cat"))
    elif case == "no_label":
        y = y.copy()
        y[4] = ""
        _csv(path, x, y)
    with pytest.raises(TabularFileError) as exc:
        tabular(str(path), label="species")
    _refusal(exc, path, *words)


def test_bad_svmlight_and_npz_files_are_refused(tmp_path):
    bad = tmp_path / "bad.svm"
    bad.write_text("1 1:0.5 2:x\n")
    with pytest.raises(TabularFileError) as exc:
        tabular(str(bad))
    _refusal(exc, bad, "not a readable LIBSVM/svmlight file", "dataset.format=csv")
    npz = tmp_path / "bad.npz"
    np.savez(npz, features=np.zeros((3, 2)))
    with pytest.raises(TabularFileError) as exc:
        tabular(str(npz))
    _refusal(exc, npz, "holds arrays features", "x and y")


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="dataset.scaling 'zscore'; known: standard, minmax, none"):
        tabular("x.csv", scaling="zscore")
    with pytest.raises(ValueError, match="dataset.fold must be in 0..4"):
        tabular("x.csv", folds=5, fold=5)
    with pytest.raises(ValueError, match="at least 2"):
        tabular("x.csv", folds=1)


# ---------------------------------------------------------------------------------------------- scaling


def _raw(split, x: np.ndarray) -> dict[str, np.ndarray]:
    """The raw rows of each part, found by the id column (feature 0 unscaled only with scaling none)."""
    return {part: x[ids] for part, ids in split.items()}


@pytest.mark.parametrize("method", ["standard", "minmax", "none"])
def test_scaling_is_fitted_on_the_training_rows_only(tmp_path, method):
    x, y = _frame(90)
    x[:, 2] = np.where(np.arange(90) < 80, x[:, 2], 1000.0)  # extreme values, kept out of training below
    path = _csv(tmp_path / "s.csv", x, y)
    ref = tabular(path, label="species", scaling="none", split_seed=3)
    ids = {p: getattr(ref, f"x_{p}")[:, 0].long().numpy() for p in ("train", "val", "test")}
    split = tabular(path, label="species", scaling=method, split_seed=3)
    raw = _raw(ids, x)
    scalers = {"standard": StandardScaler(), "minmax": MinMaxScaler(feature_range=(-1, 1)), "none": None}
    scaler = scalers[method]
    for part in ("train", "val", "test"):
        got = getattr(split, f"x_{part}").double().numpy()
        want = raw[part] if scaler is None else scaler.fit(raw["train"]).transform(raw[part])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    if method == "minmax":
        assert split.x_train.min() == -1 and split.x_train.max() == 1
    assert split.extras["record"]["scaling"]["method"] == method
    assert split.extras["record"]["scaling"]["fitted_on"] == "train"


def test_minmax_maps_a_constant_feature_to_zero_as_svm_scale(tmp_path):
    x, y = _frame(30)
    x[:, 1] = 4.0
    split = tabular(_csv(tmp_path / "c.csv", x, y), label="species", scaling="minmax")
    assert torch.all(torch.cat([split.x_train, split.x_val, split.x_test])[:, 1] == 0)


# ---------------------------------------------------------------------------------------------- splits


def test_holdout_is_scikit_learns_train_test_split(tmp_path):
    """test_size 0.2 holds out ceil(0.2 n) rows, the rows train_test_split(random_state=seed) holds out
    (as the LegendreTron code splits vehicle)."""
    x, y = _frame(87)
    path = _csv(tmp_path / "h.csv", x, y)
    for seed in (0, 7):
        split = tabular(path, label="species", scaling="none", test_size=0.2, val_size=0, stratify=False,
                        split_seed=seed)
        _, want = train_test_split(np.arange(87), test_size=0.2, random_state=seed)
        assert len(split.y_test) == 18 and len(split.y_val) == 0
        assert sorted(split.x_test[:, 0].long().tolist()) == sorted(want.tolist())


@pytest.mark.parametrize("stratify", [True, False])
def test_validation_folds_partition_the_pool_and_are_seeded(tmp_path, stratify):
    x, y = _frame(100)
    path = _csv(tmp_path / "f.csv", x, y)
    kwargs = {"label": "species", "scaling": "none", "folds": 5, "test_size": 0.2, "stratify": stratify}
    splits = [tabular(path, fold=k, **kwargs) for k in range(5)]
    tests = {tuple(sorted(s.x_test[:, 0].long().tolist())) for s in splits}
    assert len(tests) == 1  # one test set for every fold
    pool = torch.cat([splits[0].x_train, splits[0].x_val])[:, 0].long().sort().values
    vals = torch.cat([s.x_val[:, 0].long() for s in splits])
    assert torch.equal(vals.sort().values, pool) and len(vals.unique()) == 80  # disjoint, covering
    pool_counts = torch.bincount(torch.cat([splits[0].y_train, splits[0].y_val]), minlength=3)
    for s in splits:
        assert torch.equal(torch.cat([s.train_idx, s.val_idx]).sort().values, torch.arange(80))
        if stratify:  # each fold holds a fifth of each class, give or take one
            assert (torch.bincount(s.y_val, minlength=3) - pool_counts / 5).abs().max() <= 1
    again = tabular(path, fold=2, **kwargs)
    other = tabular(path, fold=2, split_seed=9, **kwargs)
    assert torch.equal(again.x_val, splits[2].x_val) and not torch.equal(other.x_val, splits[2].x_val)
    assert splits[3].extras["record"]["validation"] == "fold 3 of 5 of the pool"


def test_test_folds_partition_all_rows(tmp_path):
    x, y = _frame(50)
    path = _csv(tmp_path / "t.csv", x, y)
    raw = [tabular(path, label="species", scaling="none", folds=5, fold=k, fold_holds="test",
                   val_size=0.1).x_test[:, 0].long() for k in range(5)]
    assert torch.equal(torch.cat(raw).sort().values, torch.arange(50))


def test_fixed_split_by_column(tmp_path):
    x, y = _frame(30)
    marks = np.array(["train"] * 20 + ["val"] * 4 + ["TEST"] * 6)
    path = _csv(tmp_path / "col.csv", x, y, extra={"part": marks})
    split = tabular(path, label="species", split_column="part", scaling="none")
    assert split.input_shape == (3,)  # the split column is not a feature
    assert split.x_test[:, 0].long().tolist() == list(range(24, 30))
    assert split.x_val[:, 0].long().tolist() == list(range(20, 24))
    bad = _csv(tmp_path / "bad.csv", x, y, extra={"part": np.array(["train"] * 29 + ["holdout"])})
    with pytest.raises(TabularFileError) as exc:
        tabular(bad, label="species", split_column="part")
    _refusal(exc, bad, "split column 'part' holds ['holdout']")


# ---------------------------------------------------------------------------------------------- named sets


def test_every_shared_set_is_a_named_entry(shared_data):
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="lossbench.conf", version_base="1.3"):
        for name, (rows, features, classes) in SHARED.items():
            cfg = compose("config", [f"dataset={name}", f"data_dir={shared_data}"])
            assert cfg.dataset.path == f"{shared_data}/tabular/{name}.csv"
            split = instantiate(builder_config(cfg.dataset))
            assert split.name == name and split.num_classes == classes and split.input_shape == (features,)
            assert len(split.y_train) + len(split.y_val) + len(split.y_test) == rows
    GlobalHydra.instance().clear()
    assert "tabular" in DATASETS


def test_vowel_classes_are_in_the_uci_order(shared_data):
    split = tabular(str(shared_data / "tabular" / "vowel.csv"),
                    classes=["hid", "hId", "hEd", "hAd", "hYd", "had", "hOd", "hod", "hUd", "hud", "hed"])
    assert split.class_names[0] == "hid" and split.class_names[10] == "hed"


def test_swap_noise_finds_its_pairs_by_the_files_class_names(tmp_path):
    """noise.apply gives the split's class names to the noise model: pairs named in the config swap
    exactly those classes, whatever their indices."""
    from lossbench import noise as noise_lib
    from lossbench.noise.synthetic import Swap

    x, _ = _frame(300)
    y = np.array(["B", "A", "D", "C"])[np.arange(300) % 4]
    split = tabular(_csv(tmp_path / "abcd.csv", x, y), label="species", test_size=0.1)
    noisy_split, noisy = noise_lib.apply(Swap(0.5, pairs=[["B", "D"]]), split, seed=0)
    names = split.class_names
    changed = noisy.is_noisy
    pool = split.pool_labels()
    assert {names[int(c)] for c in pool[changed]} == {"B", "D"}
    assert all({names[int(a)], names[int(b)]} == {"B", "D"}
               for a, b in zip(pool[changed], noisy.y_noisy[changed], strict=True))
    assert torch.equal(noisy_split.y_test, split.y_test)


# ---------------------------------------------------------------------------------------------- end to end


def test_own_csv_through_run_report_and_evaluate(tmp_path, cli):
    """`lossbench run dataset=tabular dataset.path=my.csv dataset.label=target` on a researcher's file with
    string labels, 2 folds as a multirun; the report averages the folds; `lossbench evaluate` recomputes a
    run's figures from its weights (here LegendreTron in float64, its link saved beside the model)."""
    x, y = _frame(120)
    _csv(tmp_path / "my.csv", x, y, label="target")
    common = ["dataset=tabular", "dataset.path=my.csv", "dataset.label=target", "model=linear",
              "trainer.epochs=3", "trainer.progress=none", "dataset.folds=2"]
    cli("run", "-m", *common, "dataset.fold=0,1", "loss=ce", "hydra.sweep.dir=sweep", cwd=tmp_path)
    summaries = [json.loads((tmp_path / "sweep" / f"dataset.fold={k}" / "summary.json").read_text())
                 for k in (0, 1)]
    for k, s in enumerate(summaries):
        assert s["status"] == "completed" and s["dataset"] == "tabular"
        assert s["class_names"] == ["cat", "dog", "emu"]
        assert s["data"]["validation"] == f"fold {k} of 2 of the pool" and s["data"]["file"] == "my.csv"
        assert 0 <= s["test_f1"] <= 1 and 0 <= s["test_balanced_acc"] <= 1
        assert s["num_train"] + s["num_val"] == 96 and s["num_test"] == 24
    report = cli("report", "sweep", "--format", "md", cwd=tmp_path)
    assert "over seeds and folds" in report.stdout and "(2)" in report.stdout
    cli("run", *common, "loss=legendretron", "trainer.dtype=float64", "trainer.save_weights=final",
        "hydra.run.dir=lt", cwd=tmp_path)
    evaluated = cli("evaluate", "lt", cwd=tmp_path)
    assert "differs" not in evaluated.stdout and "identical" in evaluated.stdout


def test_a_bad_file_is_refused_before_anything_is_written(tmp_path, cli):
    (tmp_path / "my.csv").write_text("a,b,target\n1,x,cat\n2,3,dog\n")
    proc = cli("run", "dataset=tabular", "dataset.path=my.csv", "dataset.label=target", "hydra.run.dir=out",
               cwd=tmp_path, check=False)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()[-1]
    assert err.startswith("lossbench: error:") and "my.csv: feature column 'b' is not numeric" in err
    assert not (tmp_path / "out").exists()


def test_every_loss_trains_a_step_on_a_binary_table(tmp_path):
    """A two-class file through every loss, as a run serves it (its YAML's defaults, the training checks,
    one step of the objective on the epoch's first batch): a finite loss and gradient, or a refusal that
    names the classes (a loss that needs more than two)."""
    from omegaconf import OmegaConf

    from lossbench.conf import CONF_DIR
    from lossbench.data.transforms import BatchTransform
    from lossbench.lifecycle.builders import build_loss
    from lossbench.losses import LOSSES
    from lossbench.models.mlp import MLP
    from lossbench.reweight.base import NoReweighting
    from lossbench.train.objective import Objective, check_training

    x, _ = _frame(120)
    y = np.where(x[:, 1] + 0.3 * x[:, 2] > 5.5, "pos", "neg")
    split = tabular(_csv(tmp_path / "bin.csv", x, y, label="target"), label="target")
    assert split.num_classes == 2 and len(split.y_train.unique()) == 2
    cpu, stepped = torch.device("cpu"), []
    for name in LOSSES.names():
        cfg = OmegaConf.load(CONF_DIR / "loss" / f"{name}.yaml")
        try:
            loss = build_loss(cfg, 2, len(split.y_train))
            check_training(loss, NoReweighting(), split.y_train, 32, cpu)
        except ValueError as exc:
            assert "class" in str(exc), (name, exc)
            continue
        torch.manual_seed(0)
        model = MLP(split.input_shape, 2, hidden=(8,))
        objective = Objective(loss, NoReweighting(), BatchTransform(split))
        batch = objective.epoch_batches(split.y_train, 32, torch.Generator().manual_seed(0), cpu)[0]
        step = objective(model, split.x_train[batch], split.y_train[batch], batch)
        step.loss.backward()
        assert torch.isfinite(step.loss), name
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None), name
        stepped.append(name)
    assert {"ce", "anyloss", "focal", "legendretron", "ldr_kl", "aldr_kl"} <= set(stepped)
    assert len(stepped) >= len(LOSSES) - 3, sorted(set(LOSSES.names()) - set(stepped))
