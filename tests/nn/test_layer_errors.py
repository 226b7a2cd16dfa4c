"""Every validation message of the layers: it names the layer, what it got, what it
expected, and (where one exists) the fix."""
import numpy as np
import pytest

import tinynet as tn
from tinynet import nn


def f32(*shape):
    return tn.tensor(np.zeros(shape, np.float32))


# ---- Dense -------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,match", [
    ((128, 28, 28), r"^Dense\(784 -> 512\): expected input of shape \(N, 784\), got "
                    r"\(128, 28, 28\); flatten images first with nn\.Flatten\(\)$"),
    ((128, 1, 10, 10), r"Dense\(784 -> 512\): .*got \(128, 1, 10, 10\); flattening it "
                       r"\(nn\.Flatten\(\)\) would give 100 features.*in_features=100"),
    ((128, 100), r"Dense\(784 -> 512\): .*got \(128, 100\); the data \(or the previous layer\) "
                 r"gives 100 features"),
    ((784,), r"Dense\(784 -> 512\): .*got \(784,\); for a single sample use x\.reshape\(1, -1\)"),
    ((), r"Dense\(784 -> 512\): expected input of shape \(N, 784\), got \(\)$"),
])
def test_dense_shape_errors(shape, match):
    with pytest.raises(ValueError, match=match):
        nn.Dense(784, 512)(f32(*shape))


def test_dense_dtype_errors():
    layer = nn.Dense(4, 2)
    with pytest.raises(TypeError, match=r"^Dense\(4 -> 2\): got float64 input but its weights "
                                        r"are float32; convert the data with "
                                        r"\.astype\('float32'\)"):
        layer(tn.tensor(np.zeros((3, 4))))
    with pytest.raises(TypeError, match=r"Dense\(4 -> 2\): got uint8 input.*astype\('float32'\)"
                                        r".*x / 255"):
        layer(tn.tensor(np.zeros((3, 4), np.uint8)))
    layer.to(dtype="float64")
    with pytest.raises(TypeError, match=r"got float32 input but its weights are float64"):
        layer(f32(3, 4))


def test_dense_device_error(strict_device):
    layer = nn.Dense(4, 2).to(strict_device)
    with pytest.raises(tn.DeviceError, match=r"^Dense\(4 -> 2\): the input is on cpu but the "
                                             r"weights are on cuda; move the data with "
                                             r"x\.to\('cuda'\)"):
        layer(f32(3, 4))
    layer.to("cpu")
    with pytest.raises(tn.DeviceError, match=r"input is on cuda but the weights are on cpu"):
        layer(tn.tensor(np.zeros((3, 4), np.float32), device=strict_device))


def test_dense_accepts_numpy_input_and_rejects_junk():
    assert nn.Dense(4, 2)(np.zeros((3, 4), np.float32)).shape == (3, 2)
    with pytest.raises(TypeError, match=r"Dense\(4 -> 2\): expected a Tensor.*got str"):
        nn.Dense(4, 2)("x")


@pytest.mark.parametrize("args,match", [
    ((0, 3), r"Dense: in_features must be a positive integer, got 0"),
    ((784.0, 3), r"Dense: in_features must be a positive integer, got 784\.0"),
    ((3, None), r"Dense: out_features must be a positive integer, got None"),
    ((True, 3), r"in_features must be a positive integer, got True"),
])
def test_dense_constructor_errors(args, match):
    with pytest.raises(ValueError, match=match):
        nn.Dense(*args)


def test_dense_attributes_and_repr():
    layer = nn.Dense(784, 512)
    assert (layer.in_features, layer.out_features) == (784, 512)
    assert layer.weight.shape == (784, 512) and layer.bias.shape == (512,)
    assert repr(layer) == "Dense(784 -> 512)"
    assert repr(nn.Dense(2, 3, bias=False)) == "Dense(2 -> 3, bias=False)"
    assert nn.Dense(2, 3, bias=False).bias is None


# ---- Conv2D ------------------------------------------------------------------------------
@pytest.mark.parametrize("layer_args,shape,match", [
    ((1, 8, 3), (16, 784), r"^Conv2D\(1 -> 8, kernel_size=3\): expected input of shape "
                           r"\(N, 1, H, W\), got \(16, 784\); these look like flattened "
                           r"images: reshape them with x\.reshape\(-1, 1, 28, 28\)"),
    ((1, 8, 3), (16, 28, 28), r"Conv2D\(1 -> 8, kernel_size=3\): .*add the channel axis"),
    ((3, 8, 3), (3, 28, 28), r"Conv2D\(3 -> 8, kernel_size=3\): .*add the batch axis"),
    ((3, 8, 3), (2, 28, 28, 3), r"Conv2D\(3 -> 8, kernel_size=3\): expected input of shape "
                                r"\(N, 3, H, W\), got \(2, 28, 28, 3\); it looks channels-last"
                                r".*transpose\(0, 3, 1, 2\)"),
    ((3, 8, 3), (2, 4, 28, 28), r"has 4 channels: set in_channels=4"),
    ((1, 8, 5), (2, 1, 4, 4), r"Conv2D\(1 -> 8, kernel_size=5\): the input is 4x4 \(padding 0, "
                              r"0\), smaller than the 5x5 kernel"),
    ((1, 8, 5, 1, "valid"), (2, 1, 4, 9), r"padding='valid'\): the input is 4x9"),
])
def test_conv_shape_errors(layer_args, shape, match):
    with pytest.raises(ValueError, match=match):
        nn.Conv2D(*layer_args)(f32(*shape))


def test_conv_same_padding_accepts_small_inputs():
    assert nn.Conv2D(1, 2, 5, padding="same")(f32(1, 1, 3, 3)).shape == (1, 2, 3, 3)


def test_conv_dtype_and_device_errors(strict_device):
    layer = nn.Conv2D(1, 2, 3)
    with pytest.raises(TypeError, match=r"^Conv2D\(1 -> 2, kernel_size=3\): got float64 input "
                                        r"but its weights are float32"):
        layer(tn.tensor(np.zeros((1, 1, 5, 5))))
    layer.to(strict_device)
    with pytest.raises(tn.DeviceError, match=r"^Conv2D\(1 -> 2, kernel_size=3\): the input is "
                                             r"on cpu but the weights are on cuda"):
        layer(f32(1, 1, 5, 5))


@pytest.mark.parametrize("kwargs,match", [
    (dict(kernel_size=0), r"Conv2D\(1 -> 2\): kernel_size must be an integer >= 1 or a pair"),
    (dict(kernel_size=(3, 3, 3)), r"kernel_size must be an integer >= 1 or a pair.*\(3, 3, 3\)"),
    (dict(kernel_size=3, stride=0), r"Conv2D\(1 -> 2\): stride must be an integer >= 1"),
    (dict(kernel_size=3, padding=-1), r"padding must be an integer >= 0"),
    (dict(kernel_size=3, padding="full"), r"padding must be an integer, a pair, 'same' or "
                                          r"'valid', got 'full'"),
])
def test_conv_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nn.Conv2D(1, 2, **kwargs)
    with pytest.raises(ValueError, match=r"Conv2D: in_channels must be a positive integer"):
        nn.Conv2D(0, 2, 3)


def test_conv_attributes_and_repr():
    layer = nn.Conv2D(3, 16, 5, stride=2, padding="SAME")
    assert (layer.in_channels, layer.out_channels) == (3, 16)
    assert layer.kernel_size == (5, 5) and layer.stride == (2, 2) and layer.padding == "same"
    assert layer.weight.shape == (16, 3, 5, 5) and layer.bias.shape == (16,)
    assert repr(layer) == "Conv2D(3 -> 16, kernel_size=5, stride=2, padding='same')"
    from tinynet import init
    assert repr(nn.Conv2D(1, 2, (3, 1), padding=(1, 0), kernel_init=init.he_normal)) == \
        "Conv2D(1 -> 2, kernel_size=(3, 1), padding=(1, 0), kernel_init=he_normal)"


# ---- MaxPool2D, Flatten, ReLU, Dropout -----------------------------------------------------
def test_maxpool_errors():
    with pytest.raises(ValueError, match=r"^MaxPool2D\(kernel_size=2\): expected input of shape "
                                         r"\(N, C, H, W\), got \(2, 8, 8\); add the channel"):
        nn.MaxPool2D(2)(f32(2, 8, 8))
    with pytest.raises(ValueError, match=r"MaxPool2D\(kernel_size=3, stride=1\): the input is 2x2,"
                                         r" smaller than the 3x3 pooling window"):
        nn.MaxPool2D(3, stride=1)(f32(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"MaxPool2D: padding 2 is more than half"):
        nn.MaxPool2D(3, padding=2)
    with pytest.raises(ValueError, match=r"MaxPool2D: kernel_size must be an integer >= 1"):
        nn.MaxPool2D(0)
    pool = nn.MaxPool2D(2)
    assert pool.kernel_size == (2, 2) and pool.stride == (2, 2) and pool.padding == (0, 0)
    assert repr(nn.MaxPool2D(3, stride=2, padding=1)) == \
        "MaxPool2D(kernel_size=3, stride=2, padding=1)"


def test_flatten_relu_errors():
    with pytest.raises(ValueError, match=r"^Flatten\(\): expected a batch of shape \(N, \.\.\.\), "
                                         r"got \(5,\)"):
        nn.Flatten()(f32(5))
    with pytest.raises(TypeError, match=r"^ReLU\(\): expected a Tensor"):
        nn.ReLU()(None)
    with pytest.raises(ValueError, match=r"flatten: start_dim=3 is out of range"):
        nn.functional.flatten(f32(2, 3), start_dim=3)


def test_dropout_errors():
    with pytest.raises(ValueError, match=r"^Dropout: p must be in \[0, 1\].*got 1\.5"):
        nn.Dropout(1.5)
    with pytest.raises(TypeError, match=r"^Dropout: p must be a number"):
        nn.Dropout("half")
    with pytest.raises(ValueError, match=r"^Dropout\(p=0\.5\): the mask has shape \(3,\), "
                                         r"expected the input's shape \(2, 3\)"):
        nn.Dropout()(f32(2, 3), mask=np.ones(3))
    with pytest.raises(TypeError, match=r"^Dropout\(p=0\.5\): expected a float input, got int64"):
        nn.Dropout()(tn.tensor([1, 2]))
    assert repr(nn.Dropout(0.2)) == "Dropout(p=0.2)"
