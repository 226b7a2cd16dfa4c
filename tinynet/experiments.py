"""The four experiments tinynet was built to explain, as ready-made models.

Each builder returns a fresh ``nn.Sequential`` set up the way the original
experiment was (layer sizes, initializers, dropout); ``EXPERIMENTS`` adds the
optimizer, batch size and input layout the experiment trained with.  The CLI
(`tinynet explain`), the lessons and the benchmark all start from here, so
they measure the same networks.

    zero-pixels    MLP 784-512-512-10, uniform(-0.05, 0.05), Dropout 0.2, RMSprop:
                   the first layer's rows for always-black pixels never move.
    first-conv     two-conv CNN with every weight and bias drawn from normal(0, 1),
                   Adam 1e-3: the first conv's filters "don't change" in a picture.
    constant-init  MLP 784-256-30-10 with every weight 1 and zero biases, SGD 0.5:
                   all hidden units stay identical; loss sits at ln 10.
    zero-kernel    four-conv CNN whose second conv has a zero kernel and zero bias,
                   SGD 1e-4 on a fixed batch of 50: only the last bias moves.
"""
from dataclasses import dataclass
from typing import Callable

from tinynet import init, nn, optim

#: Keras's ``random_uniform`` default, the zero-pixels experiment's kernel init.
KERAS_RANDOM_UNIFORM = init.uniform(-0.05, 0.05)
#: TensorFlow's ``random_normal`` default (std 1), the first-conv experiment's init.
TF_RANDOM_NORMAL = init.normal(0.0, 1.0)


def zero_pixels_mlp(kernel_init=KERAS_RANDOM_UNIFORM, dropout=0.2, hidden=512):
    """Dense 784→512 ReLU Dropout → 512 ReLU Dropout → 10 (logits).

    Input (N, 784) flattened images; output (N, 10).
    """
    return nn.Sequential(
        nn.Dense(784, hidden, kernel_init=kernel_init), nn.ReLU(), nn.Dropout(dropout),
        nn.Dense(hidden, hidden, kernel_init=kernel_init), nn.ReLU(), nn.Dropout(dropout),
        nn.Dense(hidden, 10, kernel_init=kernel_init),
    )


def first_conv_cnn(kernel_init=TF_RANDOM_NORMAL, bias_init=TF_RANDOM_NORMAL, dropout=0.25):
    """conv5×5 1→32 same, ReLU, pool2, conv5×5 32→64 same, ReLU, pool2,
    Dense 3136→1024 ReLU (Dropout), Dense 1024→10.

    Input (N, 1, 28, 28); output (N, 10).  ``dropout=0`` leaves Dropout out
    (the benchmark's variant).
    """
    layers = [
        nn.Conv2D(1, 32, 5, padding="same", kernel_init=kernel_init, bias_init=bias_init),
        nn.ReLU(), nn.MaxPool2D(2),
        nn.Conv2D(32, 64, 5, padding="same", kernel_init=kernel_init, bias_init=bias_init),
        nn.ReLU(), nn.MaxPool2D(2),
        nn.Flatten(),
        nn.Dense(7 * 7 * 64, 1024, kernel_init=kernel_init, bias_init=bias_init), nn.ReLU(),
    ]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Dense(1024, 10, kernel_init=kernel_init, bias_init=bias_init))
    return nn.Sequential(*layers)


def constant_init_mlp(value=1.0, hidden=(256, 30)):
    """Dense 784→256 ReLU → 30 ReLU → 10 with every weight ``value`` and zero biases.

    Input (N, 784); output (N, 10).
    """
    h1, h2 = hidden
    const = init.constant(value)
    return nn.Sequential(
        nn.Dense(784, h1, kernel_init=const), nn.ReLU(),
        nn.Dense(h1, h2, kernel_init=const), nn.ReLU(),
        nn.Dense(h2, 10, kernel_init=const),
    )


def zero_kernel_cnn(zero_layer=1, kernel_init=init.glorot_normal):
    """conv3×3 1→32 same ReLU, pool2, then three conv3×3 32→32 same ReLU,
    Flatten, Dense 6272→128 ReLU, Dense 128→10.

    The conv at position ``zero_layer`` among the four (0-based; default 1,
    the second, as in the original experiment) gets a zero kernel and a
    zero bias; pass ``zero_layer=None`` for the healthy baseline.  Input
    (N, 1, 28, 28); output (N, 10).
    """
    def conv(i, cin):
        k = init.zeros if i == zero_layer else kernel_init
        return nn.Conv2D(cin, 32, 3, padding="same", kernel_init=k, bias_init=init.zeros)

    return nn.Sequential(
        conv(0, 1), nn.ReLU(), nn.MaxPool2D(2),
        conv(1, 32), nn.ReLU(),
        conv(2, 32), nn.ReLU(),
        conv(3, 32), nn.ReLU(),
        nn.Flatten(),
        nn.Dense(14 * 14 * 32, 128, kernel_init=kernel_init), nn.ReLU(),
        nn.Dense(128, 10, kernel_init=kernel_init),
    )


@dataclass(frozen=True)
class Experiment:
    """How one experiment was trained.

    build      -- () -> model
    optimizer  -- (params) -> optimizer, with the original hyperparameters
    batch_size -- the original batch size
    flatten    -- True if the model takes (N, 784) rather than (N, 1, 28, 28)
    """
    name: str
    title: str
    build: Callable
    optimizer: Callable
    batch_size: int
    flatten: bool


EXPERIMENTS = {
    "zero-pixels": Experiment(
        "zero-pixels", "Weights of always-zero pixels never change",
        zero_pixels_mlp, lambda params: optim.RMSprop(params, lr=1e-3, rho=0.9, eps=1e-7),
        batch_size=128, flatten=True),
    "tiny-updates": Experiment(
        "tiny-updates", "The first conv layer 'does not change' in a picture",
        first_conv_cnn, lambda params: optim.Adam(params, lr=1e-3),
        batch_size=128, flatten=False),
    "constant-init": Experiment(
        "constant-init", "Constant initialization: every hidden unit stays the same",
        constant_init_mlp, lambda params: optim.SGD(params, lr=0.5),
        batch_size=256, flatten=True),
    "zero-kernel": Experiment(
        "zero-kernel", "A zero kernel stops learning before and after it",
        zero_kernel_cnn, lambda params: optim.SGD(params, lr=1e-4),
        batch_size=50, flatten=False),
}
