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


#: At most this share of a parameter's entries, with at least half of the parameter
#: moving, is "scattered": single entries whose own gradient happened to be tiny (an
#: input that is rarely nonzero), not a layer whose gradient vanished.
SCATTERED_SHARE = 0.01


def is_scattered(lost, size, frozen):
    """A few entries rounded away while the rest of the parameter learns."""
    return lost <= max(1, SCATTERED_SHARE * size) and frozen <= size // 2


def fix(scattered=False):
    if scattered:
        return ("Nothing needs fixing: the rest of this parameter learns, so its gradient did "
                "not vanish; these few entries had a tiny gradient of their own and move once "
                "it grows (more steps, or a larger learning rate).")
    return ("Make the update reach the weight: He init (init.he_normal) so the gradient does "
            "not vanish on its way to the input, or a larger learning rate / an adaptive "
            "optimizer (Adam) whose step does not shrink with the gradient.")


def story(f):
    ev = f.evidence
    few = (" -- a few scattered entries while the rest of the parameter moved"
           if ev.get("scattered") else "")
    return (f"{entries(f)} never changed although their gradient was not 0{few}: the last "
            f"update was at most {ev['update_max']:.2g} per entry (lr·|g| under "
            f"{ev['optimizer']}), below half the float32 spacing of those weights (spacing at "
            f"least {ev['spacing_min']:.2g}; largest update/spacing ratio "
            f"{ev['update_over_spacing_max']:.2g}), so w - update rounds back to w")


CAUSE = Cause(name="below_resolution", freezes=True, plain="update below float resolution",
              detect=lambda ev: attribution(ev, "below_resolution"), story=story)
