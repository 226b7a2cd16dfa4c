"""Checkpoints: round trips, atomic writes, and errors that name the mismatch or the file."""
import json
import os

import numpy as np
import pytest

import tinynet as tn
import tinynet.nn.functional as F
from tinynet import checkpoint, nn, optim
from tinynet.checkpoint import CheckpointError, load, save
from tinynet.train import fit


def mlp(hidden=8, seed=0, extra=False):
    tn.manual_seed(seed)
    layers = [nn.Dense(4, hidden), nn.ReLU(), nn.Dense(hidden, 3)]
    if extra:
        layers += [nn.ReLU(), nn.Dense(3, 3)]
    return nn.Sequential(*layers)


def batches(seed=0, n=4):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(8, 4)).astype(np.float32), rng.integers(0, 3, size=8))
            for _ in range(n)]


def train(model, opt, data):
    fit(model, F.softmax_cross_entropy, opt, data, progress=False)


def params(model):
    return {n: p.numpy() for n, p in model.named_parameters()}


def test_round_trip_restores_model_and_optimizer_and_resumes_identically(tmp_path):
    path = tmp_path / "ckpt.npz"
    a = mlp(seed=0)
    opt_a = optim.Adam(a.named_parameters(), lr=1e-2)
    train(a, opt_a, batches(0))
    returned = save(a, path, optimizer=opt_a)
    assert returned == os.fspath(path)

    b = mlp(seed=1)
    opt_b = optim.Adam(b.named_parameters(), lr=1e-2)
    before = list(b.parameters())
    info = load(b, path, optimizer=opt_b)
    assert info["missing"] == [] and info["unexpected"] == []
    assert all(p is q for p, q in zip(before, b.parameters())), "parameters keep identity"
    for name, value in params(a).items():
        np.testing.assert_array_equal(value, params(b)[name])
    assert opt_b.step_count == opt_a.step_count == 4

    train(a, opt_a, batches(1))                # both continue the same way
    train(b, opt_b, batches(1))
    for name, value in params(a).items():
        np.testing.assert_array_equal(value, params(b)[name])


def test_file_is_plain_npz_with_metadata(tmp_path):
    path = tmp_path / "m.npz"
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train(model, opt, batches())
    save(model, path, optimizer=opt)
    with np.load(path, allow_pickle=False) as z:
        assert {"param/0.weight", "param/0.bias", "param/2.weight", "param/2.bias",
                "__meta__"} <= set(z.files)
        assert any(k.startswith("optim/param0/momentum_buffer") for k in z.files)
        meta = json.loads(str(z["__meta__"]))
        np.testing.assert_array_equal(z["param/0.weight"],
                                      dict(model.named_parameters())["0.weight"].numpy())
    assert meta["tinynet_version"] == tn.__version__
    assert meta["model"] == "Sequential"
    assert ["0", "Dense"] in meta["modules"]
    assert meta["params"]["0.weight"] == {"shape": [4, 8], "dtype": "float32"}
    assert meta["optimizer"]["optimizer"] == "SGD" and meta["optimizer"]["step"] == 4


def test_save_is_atomic_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    model = mlp()
    save(model, path)
    old_bytes = path.read_bytes()

    real_savez = np.savez

    def failing_savez(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a zip")        # something lands on disk...
        raise OSError("disk full (simulated)")      # ...then the write dies

    monkeypatch.setattr(np, "savez", failing_savez)
    train(model, optim.SGD(model.parameters(), lr=0.5), batches())
    with pytest.raises(OSError, match="disk full"):
        save(model, path)
    monkeypatch.setattr(np, "savez", real_savez)
    assert path.read_bytes() == old_bytes, "the old checkpoint is intact"
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"], "no temporary file is left behind"
    fresh = mlp(seed=5)
    load(fresh, path)                                 # and it still loads


def test_save_to_a_new_path_has_normal_permissions_and_no_suffix_added(tmp_path):
    path = tmp_path / "weights.ckpt"
    save(mlp(), path)
    assert sorted(os.listdir(tmp_path)) == ["weights.ckpt"]
    assert os.stat(path).st_mode & 0o777 == 0o644


def test_a_different_model_is_named_in_the_error(tmp_path):
    path = tmp_path / "small.npz"
    save(mlp(hidden=8), path)

    wider = mlp(hidden=16)
    untouched = params(wider)
    with pytest.raises(CheckpointError, match=r"parameter '0\.weight' has shape \(4, 8\) in "
                                              r"the checkpoint, the model expects \(4, 16\)"):
        load(wider, path)
    for name, value in untouched.items():
        np.testing.assert_array_equal(value, params(wider)[name])

    deeper = mlp(extra=True)
    with pytest.raises(CheckpointError, match=r"'4\.weight' is missing from the checkpoint"):
        load(deeper, path)

    save(deeper, tmp_path / "deep.npz")
    with pytest.raises(CheckpointError, match=r"unexpected parameter '4\.weight'"):
        load(mlp(), tmp_path / "deep.npz")
    info = load(mlp(), tmp_path / "deep.npz", strict=False)
    assert info["unexpected"] == ["4.weight", "4.bias"]
    with pytest.raises(CheckpointError, match="shape"):
        load(mlp(hidden=16), path, strict=False)      # shapes are checked even when not strict


def test_unreadable_files_name_the_path(tmp_path):
    model = mlp()
    text = tmp_path / "notes.txt"
    text.write_text("this is not a checkpoint\n")
    with pytest.raises(CheckpointError, match="notes.txt"):
        load(model, text)

    good = tmp_path / "good.npz"
    save(model, good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(CheckpointError, match="truncated.npz"):
        load(model, truncated)

    other = tmp_path / "other.npz"
    np.savez(other, weights=np.ones(3))
    with pytest.raises(CheckpointError, match="other.npz.*not a tinynet checkpoint"):
        load(model, other)

    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load(model, tmp_path / "missing.npz")


def test_optimizer_state_errors(tmp_path):
    model = mlp()
    path = tmp_path / "no_opt.npz"
    save(model, path)
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load(model, path, optimizer=optim.Adam(model.parameters()))

    opt = optim.Adam(model.parameters())
    train(model, opt, batches())
    save(model, tmp_path / "adam.npz", optimizer=opt)
    sgd = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(CheckpointError, match="saved from Adam"):
        load(model, tmp_path / "adam.npz", optimizer=sgd)


def test_train_module_exposes_save_and_load():
    from tinynet import train
    assert train.save is checkpoint.save and train.load is checkpoint.load


def test_round_trip_on_device(device, tmp_path):
    path = tmp_path / "dev.npz"
    model = mlp().to(device)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    train(model, opt, batches())
    save(model, path, optimizer=opt)
    other = mlp(seed=3).to(device)
    opt2 = optim.Adam(other.parameters(), lr=1e-2)
    load(other, path, optimizer=opt2)
    assert all(p.device == device for p in other.parameters())
    for name, value in params(model).items():
        np.testing.assert_array_equal(value, params(other)[name])
    assert all(tn.backend.device_of(v) == device
               for st in opt2.state for k, v in st.items() if k != "step")


# --------------------------------------------------------------------------
# tn.save / tn.load: the PyTorch habit, and values that will break training
# --------------------------------------------------------------------------
def test_tn_save_load_are_the_checkpoint_functions(tmp_path):
    assert tn.save is checkpoint.save and tn.load is checkpoint.load
    a, b = mlp(seed=0), mlp(seed=1)
    tn.save(a, tmp_path / "m.npz")
    tn.load(b, tmp_path / "m.npz")
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=n)


def test_state_dict_habit_round_trips(tmp_path):
    a, b = mlp(seed=0), mlp(seed=1)
    path = tn.save(a.state_dict(), tmp_path / "sd.npz")
    state = tn.load(path)
    assert list(state) == [n for n, _ in a.named_parameters()]
    b.load_state_dict(state)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=n)
    # the file a model writes and the file its state dict writes hold the same arrays
    tn.save(a, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as z1, np.load(path) as z2:
        for key in z1.files:
            if key != "__meta__":
                np.testing.assert_array_equal(z1[key], z2[key])


def test_load_path_only_accepts_paths():
    with pytest.raises(TypeError, match="load"):
        tn.load(mlp())


def _write_with(tmp_path, name, values):
    """A checkpoint of mlp() whose parameter `name` holds `values` (any dtype)."""
    model = mlp()
    state = model.state_dict()
    state[name] = values
    return tn.save(state, tmp_path / "bad.npz")


@pytest.mark.parametrize("bad,expect", [(np.nan, "1 NaN"), (np.inf, "1 Inf"),
                                        (1e39, "beyond the float32 range")])
def test_loading_nan_inf_or_float32_overflow_warns_naming_the_parameter(tmp_path, bad, expect):
    values = mlp().state_dict()["2.weight"].astype(np.float64)
    values[1, 2] = bad
    path = _write_with(tmp_path, "2.weight", values)
    model = mlp()
    with pytest.warns(checkpoint.CheckpointWarning, match=r"'2\.weight'.*" + expect):
        load(model, path)
    got = model.state_dict()["2.weight"][1, 2]
    assert not np.isfinite(got)          # loaded as asked: NaN stays NaN, 1e39 -> inf


def test_loading_path_only_warns_about_nan(tmp_path):
    values = mlp().state_dict()["0.bias"].copy()
    values[:] = np.nan
    path = _write_with(tmp_path, "0.bias", values)
    with pytest.warns(checkpoint.CheckpointWarning, match=r"'0\.bias'.*8 NaN of 8"):
        tn.load(path)


def test_clean_checkpoint_loads_without_warnings(tmp_path, recwarn):
    path = tn.save(mlp(), tmp_path / "ok.npz")
    load(mlp(), path)
    tn.load(path)
    assert not [w for w in recwarn if issubclass(w.category, checkpoint.CheckpointWarning)]


def test_pytorch_state_dict_transposed_into_dense(tmp_path):
    """A torch Linear's weight is (out, in); its .T loads into Dense's (in, out)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 3)
    model = nn.Sequential(nn.Dense(4, 3))
    tn.save({"0.weight": lin.weight.detach().numpy().T,
             "0.bias": lin.bias.detach().numpy()}, tmp_path / "t.npz")
    model.load_state_dict(tn.load(tmp_path / "t.npz"))
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(model(tn.tensor(x)).numpy(),
                               lin(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
