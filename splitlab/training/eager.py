"""Eager torch without torch.compile's start-up.

torch 2.14 wraps some of its functions for torch.compile, and each wrapper imports torch._dynamo on its first
call: 0.9 of the 3 CPU-s that a short training process spends (docs/tests.md, "Where the time goes"). Nothing
here is compiled. So the wrappers of the functions that training calls are given, ahead, what each caches after
its first call, its uncompiled form (the function itself); and SGD steps without its own wrapper, which imports
torch._dynamo on every call.
"""

import torch
from torch.utils.flop_counter import _FlopCounterMode

for _wrapper in (torch.optim.Optimizer.add_param_group, torch.optim.Optimizer.zero_grad,
                 torch.optim.Optimizer.state_dict, torch.optim.Optimizer.load_state_dict,
                 _FlopCounterMode.__torch_dispatch__):
    setattr(_wrapper.__wrapped__, "__dynamo_disable", _wrapper.__wrapped__)


class SGD(torch.optim.SGD):
    """torch.optim.SGD, its step without the wrapper (whose one other effect, no gradient recorded for the step,
    is kept)."""

    @torch.no_grad()
    def step(self, closure=None):
        return torch.optim.SGD.step.__wrapped__(self, closure)
