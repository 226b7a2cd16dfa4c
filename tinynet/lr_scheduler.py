"""Learning-rate schedules, PyTorch's way: ``optim.lr_scheduler.StepLR(opt, 30, 0.1)``.

    opt = optim.SGD(model.parameters(), lr=0.1)
    sched = optim.lr_scheduler.StepLR(opt, step_size=30, gamma=0.1)
    for epoch in range(90):
        fit(model, loss_fn, opt, loader)          # one epoch
        sched.step()                              # then move the learning rate

A scheduler sets ``optimizer.lr`` (tinynet's optimizers read it on every
update).  As in PyTorch, creating it applies epoch 0's rate, and each
``step()`` moves to the next epoch:  lr = base_lr * factor(epoch), where
base_lr is ``optimizer.lr`` at creation.  The factors:

    StepLR(step_size, gamma=0.1)      gamma ** (epoch // step_size)
    MultiStepLR(milestones, gamma)    gamma ** (number of milestones <= epoch)
    ExponentialLR(gamma)              gamma ** epoch
    LambdaLR(lr_lambda)               lr_lambda(epoch) -- e.g. a linear warm-up:
                                      LambdaLR(opt, lambda e: min(1.0, (e + 1) / 5))

Step it once per epoch, or once per batch for a warm-up counted in steps
(then ``epoch`` counts steps).
"""
import bisect
import numbers
import sys

# `from tinynet.optim.lr_scheduler import StepLR` works as in PyTorch (tinynet.optim
# is a module, not a package; it imports this one as its attribute lr_scheduler).
sys.modules.setdefault("tinynet.optim.lr_scheduler", sys.modules[__name__])

__all__ = ["LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "LambdaLR"]


class LRScheduler:
    """Base class: subclasses define ``factor(epoch)``; the rate is base_lr * factor."""

    def __init__(self, optimizer):
        kind = type(self).__name__
        if not isinstance(getattr(optimizer, "lr", None), numbers.Real):
            raise TypeError(f"{kind}: expected a tinynet optimizer (with a numeric .lr), got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.last_epoch = -1
        self.step()

    def factor(self, epoch):
        raise NotImplementedError

    def step(self):
        """Move to the next epoch and set ``optimizer.lr`` for it."""
        self.last_epoch += 1
        lr = self.base_lr * float(self.factor(self.last_epoch))
        if not lr >= 0:        # also catches NaN
            raise ValueError(f"{type(self).__name__}: epoch {self.last_epoch} gives the "
                             f"learning rate {lr}; it must be a number >= 0")
        self.optimizer.lr = lr

    def get_last_lr(self):
        """[the rate set by the last step()] -- a list, as in PyTorch (one group)."""
        return [self.optimizer.lr]

    def state_dict(self):
        return {"base_lr": self.base_lr, "last_epoch": self.last_epoch}

    def load_state_dict(self, state):
        self.base_lr = float(state["base_lr"])
        self.last_epoch = int(state["last_epoch"])
        self.optimizer.lr = self.base_lr * float(self.factor(self.last_epoch))

    def __repr__(self):
        return (f"{type(self).__name__}(epoch={self.last_epoch}, base_lr={self.base_lr}, "
                f"lr={self.optimizer.lr})")


def _positive_int(kind, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{kind}: {name} must be an integer >= 1, got {value!r}")
    return int(value)


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = _positive_int("StepLR", "step_size", step_size)
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def factor(self, epoch):
        return self.gamma ** (epoch // self.step_size)


class MultiStepLR(LRScheduler):
    """Multiply the rate by ``gamma`` at each epoch in ``milestones``."""

    def __init__(self, optimizer, milestones, gamma=0.1):
        self.milestones = sorted(_positive_int("MultiStepLR", "a milestone", m)
                                 for m in milestones)
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def factor(self, epoch):
        return self.gamma ** bisect.bisect_right(self.milestones, epoch)


class ExponentialLR(LRScheduler):
    """Multiply the rate by ``gamma`` every epoch."""

    def __init__(self, optimizer, gamma):
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def factor(self, epoch):
        return self.gamma ** epoch


class LambdaLR(LRScheduler):
    """The rate is base_lr * ``lr_lambda(epoch)``: warm-ups and any custom shape."""

    def __init__(self, optimizer, lr_lambda):
        if not callable(lr_lambda):
            raise TypeError(f"LambdaLR: lr_lambda must be a function of the epoch, got "
                            f"{lr_lambda!r}")
        self.lr_lambda = lr_lambda
        super().__init__(optimizer)

    def factor(self, epoch):
        return self.lr_lambda(epoch)
