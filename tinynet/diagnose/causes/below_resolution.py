"""below_resolution: the update was nonzero but smaller than the float spacing of the weight.

float32 has about 7 significant digits: w - u == w (bit for bit) when |u| is
below half the spacing between w and the next float32 (np.spacing(w)).  With a
tiny init in a deep ReLU net the first layers' gradients vanish until lr·|g|
falls under that line: the weights are frozen by rounding, not by a zero
gradient.  The evidence recomputes the optimizer's last update from its state
(``last_update``) and checks w - u == w for each entry named.
"""
from tinynet.diagnose.causes import Cause
from tinynet.diagnose.causes._passes import attribution, entries


def fix():
    return ("Make the update reach the weight: He init (init.he_normal) so the gradient does "
            "not vanish on its way to the input, or a larger learning rate / an adaptive "
            "optimizer (Adam) whose step does not shrink with the gradient.")


def story(f):
    ev = f.evidence
    return (f"{entries(f)} never changed although their gradient was not 0: the last update "
            f"was at most {ev['update_max']:.2g} per entry (lr·|g| under {ev['optimizer']}), "
            f"below half the float32 spacing of those weights (spacing at least "
            f"{ev['spacing_min']:.2g}; largest update/spacing ratio "
            f"{ev['update_over_spacing_max']:.2g}), so w - update rounds back to w")


CAUSE = Cause(name="below_resolution", freezes=True, plain="update below float resolution",
              detect=lambda ev: attribution(ev, "below_resolution"), story=story)
