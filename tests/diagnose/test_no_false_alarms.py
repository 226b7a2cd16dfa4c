"""Healthy training gives no finding: the new causes do not fire where nothing is wrong."""
import numpy as np

import tinynet as tn
from tinynet import init, nn, optim
from tinynet.diagnose import explain

from test_explain import batches, mlp, teacher_data


def test_healthy_cnn_with_dropout_and_maxpool_under_adam():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((96, 2, 10, 10)).astype(np.float32)
    y = (x[:, 0, 3:7, 3:7].sum((1, 2)) > x[:, 1, 3:7, 3:7].sum((1, 2))).astype(np.int64)
    tn.manual_seed(1)
    he = init.he_normal
    model = nn.Sequential(nn.Conv2D(2, 6, 3, padding="same", kernel_init=he), nn.ReLU(),
                          nn.MaxPool2D(2), nn.Dropout(0.25), nn.Flatten(),
                          nn.Dense(6 * 5 * 5, 16, kernel_init=he), nn.ReLU(), nn.Dropout(0.25),
                          nn.Dense(16, 2, kernel_init=he))
    report = explain(model, batches(x, y, 16), optimizer=optim.Adam(model.parameters(), lr=1e-3),
                     steps=18, every=2)
    assert report.findings == [], str(report)
    # at most a few entries where a rarely-open unit never met a feature on one sample
    assert sum(u["entries"] for u in report.unexplained.values()) < 0.005 * 2564


def test_black_bordered_images_into_a_conv_are_not_an_alarm():
    # every image has a 3-pixel black border: the conv's input channel still sees
    # nonzero pixels, so the conv has nothing to report.  The Dense rows that read
    # conv outputs lying wholly on the border DO never change (relu(0 + bias 0) = 0
    # there): that is true, and must be told as harmless, from layer 0, not as a
    # root cause
    rng = np.random.default_rng(2)
    x = np.zeros((64, 1, 14, 14), np.float32)
    x[:, :, 3:-3, 3:-3] = rng.random((64, 1, 8, 8))
    y = (x[:, 0, 3:7].sum((1, 2)) > x[:, 0, 7:11].sum((1, 2))).astype(np.int64)
    tn.manual_seed(2)
    model = nn.Sequential(nn.Conv2D(1, 4, 3, kernel_init=init.he_normal), nn.ReLU(),
                          nn.MaxPool2D(2), nn.Flatten(), nn.Dense(4 * 6 * 6, 2))
    report = explain(model, batches(x, y, 16), optimizer=optim.Adam(model.parameters(), lr=1e-3),
                     steps=12)
    assert not [f for f in report.findings if f.layer == "0"], str(report)
    for f in report.findings:
        assert (f.cause, f.root, f.permanent, f.evidence["source"]) == \
            ("zero_input", None, False, "0")
        assert f.fix.startswith("Usually harmless")
    # the truth: those pooled conv outputs are 0 on every image (initial weights; the
    # conv moved, but its bias stayed <= 0 where the window is all black)
    with tn.no_grad():
        out = model[:4](tn.tensor(x)).numpy()
    for f in report.findings:
        assert not out[:, f.indices].any()


def test_units_only_sometimes_inactive_are_not_dead():
    # biases around 0 on centred data: each unit is shut on roughly half of the samples
    x, y = teacher_data(n=256, d=12)
    tn.manual_seed(3)
    model = mlp([12, 32, 4])
    report = explain(model, batches(x, y), optimizer=optim.SGD(model.parameters(), lr=0.05),
                     steps=16)
    rec = report.recorder
    zero_frac = rec.layer_stats["1"]["zero_frac"]
    assert 0.2 < float(np.median(zero_frac)) < 0.8          # the premise: often inactive
    assert report.findings == [], str(report)
