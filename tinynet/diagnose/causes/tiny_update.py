"""tiny_update: the weights move every step, but by very little (update ratio ≪ 1e-3).

The thresholds and the measurements behind them: :mod:`..updates`.
"""
from tinynet.diagnose.causes import Cause
from tinynet.diagnose.causes._passes import n, num, updates


def story(f):
    ev = f.evidence
    s = (f"moves, but by little: median update ‖ΔW‖/‖W‖ = "
         f"{num(ev.get('update_ratio_median'), '.1e')} per step (healthy: about 1e-3 to 1e-2)")
    if ev.get("relative_change") is not None:
        s += (f"; after {n(ev['steps'])} steps the weights differ from their start by "
              f"{ev['relative_change']:.2%} of their norm")
    if ev.get("rule") == "adaptive_ceiling":
        s += (f". {ev['optimizer']} moves each entry by about lr = {ev['lr']:g} per step, and "
              f"these weights have rms {ev['weight_rms']:.3g} (lr/rms = "
              f"{ev['lr_over_weight_rms']:.1e}): the init is too large for the step")
    vs = ev.get("grad_rms_vs_last_layer")
    if vs is not None and vs >= 1e-2:
        s += (f". Its gradient is not vanishing: rms {num(ev.get('grad_rms'))}, {vs:.2g}x the "
              f"last layer's")
    return s


CAUSE = Cause(name="tiny_update", freezes=False, plain="tiny updates",
              detect=lambda ev: updates(ev, "tiny_update"), story=story)
