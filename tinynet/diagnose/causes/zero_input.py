"""zero_input: the weights that read an input feature which is 0 on every sample.

dW = Aᵀ·Δ: row f of dW sums A[n, f]·Δ[n, :] over samples n, so a feature that
is 0 in every sample gives an exactly-zero row (a conv: input channel f).
Permanent only when proven over the WHOLE data set (every sample seen in
training, or the data scanned by explain): zero in the samples seen says
nothing about the samples not seen.
"""
from tinynet.diagnose.causes import Cause
from tinynet.diagnose.causes._passes import attribution, entries, n


def fix(from_data, root=None, source=None, proven=True):
    if from_data:
        if not proven:
            return ("Nothing to fix while the feature stays 0; it was 0 only in the samples "
                    "seen: train on more of the data and these rows will learn where it is "
                    "not 0.")
        return ("Nothing is broken: a feature that is 0 in every sample of the data set "
                "carries no information, so its weights have nothing to learn from (crop "
                "those inputs if the frozen rows bother you).")
    if root is not None:
        return f"Fix {root}; these rows start learning as soon as their inputs are not always 0."
    return (f"Usually harmless (often the image border seen through the layers before); if "
            f"many features are affected, look at layer {source}'s bias and initial scale -- "
            f"these rows learn once it outputs nonzero values there.")


def story(f):
    ev = f.evidence
    kind = ev.get("feature_kind", "input feature")
    what = f"{n(ev['features'])} of {n(ev['features_total'])} {kind}s"
    grad = "im2col(x)ᵀδ" if kind == "input channel" else "xᵀδ"
    if f.root is None and ev.get("source") == "the data":
        rows = "input channels" if kind == "input channel" else "input rows"
        thing = "channel" if kind == "input channel" else kind
        s = (f"{what.replace(kind + 's', rows)} ({entries(f)}) never changed: their {thing} "
             f"was 0 in all {n(ev['samples_seen'])} samples seen")
        data_n = ev.get("data_samples")
        if ev.get("zero_in_whole_data"):
            s += (f", and in all {n(data_n)} samples of the data set" if data_n else
                  f", which covered {n(ev.get('data_passes', 1))} full pass(es) over the data")
        elif data_n:
            s += (f" ({n(data_n)} in the data set; it is nonzero in some of the others"
                  if ev.get("nonzero_elsewhere") else
                  f" (the data set has {n(data_n)}; the others were not checked")
            s += ")"
        s += f", so dW = {grad} is exactly 0 there"
        return s
    because = f" because of {f.root}" if f.root else ""
    when = (f"stopped changing: their input, the output of layer {ev.get('source')}, was 0 "
            f"in all {n(ev['samples_seen'])} samples from step {f.since} on" if f.since else
            f"never changed: their input, the output of layer {ev.get('source')}, was 0 in "
            f"all {n(ev['samples_seen'])} samples seen")
    return f"{entries(f)} ({what}) {when}{because}, so dW = {grad} is exactly 0 there"


CAUSE = Cause(name="zero_input", freezes=True, plain="input always 0",
              detect=lambda ev: attribution(ev, "zero_input"), story=story)
