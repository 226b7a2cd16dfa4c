"""The explain cases' own sentences agree with what was run (tinynet/diagnose/cases.py)."""
import re

import numpy as np

from tinynet import data
from tinynet.diagnose import cases


def test_constant_init_counts_the_steps_it_ran_and_never_calls_training_images_held_out():
    bs = cases.EXPERIMENTS["constant-init"].batch_size
    x, y = data.digits(bs + 10, seed=0)      # 1 step per epoch (drop_last)
    res = cases.run_case("constant-init", x, y, steps=3, x_val=x[:50], y_val=y[:50])
    text = str(res)
    m = re.search(r"batch (\d+), (\d+) steps \((\d+) epochs? of (\d+) steps?\)", text)
    assert m and int(m.group(1)) == bs and int(m.group(2)) == 3
    assert int(m.group(3)) * int(m.group(4)) == 3
    # every validation image is a training image: no "held-out" number at all
    assert ", held-out acc" not in text and "No held-out accuracy" in text


def test_constant_init_partial_epoch_is_said_as_such():
    bs = cases.EXPERIMENTS["constant-init"].batch_size
    x, y = data.digits(2 * bs + 10, seed=0)  # 2 steps per epoch
    xv, yv = data.digits(40, seed=1, split="test")
    res = cases.run_case("constant-init", x, y, steps=3, x_val=np.concatenate([xv, x[:10]]),
                         y_val=np.concatenate([yv, y[:10]]))
    text = str(res)
    assert "3 steps (1 epoch of 2 steps and 1 step of epoch 2)" in text
    assert "epoch 2 (1 of 2 steps)" in text
    assert "the 40 validation images that are not training images (10 of 50 were" in text
