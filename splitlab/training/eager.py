"""Eager torch without torch.compile's start-up.

torch 2.14 wraps some of its functions for torch.compile, and each wrapper imports torch._dynamo on its first
call: 0.9 of the 3 CPU-s that a short training process spends (docs/tests.md, "Where the time goes"). Nothing
here is compiled. So the wrappers of the functions that training calls are given, ahead, what each caches after
its first call, its uncompiled form (the function itself); and SGD steps without its own wrapper, which imports
torch._dynamo on every call. With a torch that wraps otherwise, what is not found is left as it is.
"""

import torch
from torch.utils import flop_counter

_counting_mode = getattr(flop_counter, "_FlopCounterMode", None)
for _wrapper in (torch.optim.Optimizer.add_param_group, torch.optim.Optimizer.zero_grad,
                 torch.optim.Optimizer.state_dict, torch.optim.Optimizer.load_state_dict,
                 getattr(_counting_mode, "__torch_dispatch__", None)):
    _function = getattr(_wrapper, "__wrapped__", None)
    if _function is not None:
        setattr(_function, "__dynamo_disable", _function)

_sgd_step = getattr(torch.optim.SGD.step, "__wrapped__", torch.optim.SGD.step)


class SGD(torch.optim.SGD):
    """torch.optim.SGD, its step without the wrapper (whose one other effect, no gradient recorded for the step,
    is kept)."""

    @torch.no_grad()
    def step(self, closure=None):
        return _sgd_step(self, closure)
