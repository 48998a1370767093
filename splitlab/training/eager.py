"""Eager torch without torch.compile's start-up.

torch 2.14 wraps some of its functions for torch.compile, and each wrapper imports torch._dynamo on its first
call: 0.9 of the 3 CPU-s that a short training process spends (docs/tests.md, "Where the time goes"). Nothing
here is compiled. So ``uncompiled`` gives such wrappers, ahead, what each caches after its first call, its
uncompiled form (the function itself), here for the optimizer's methods and in costs/work.py for the FLOP
counter's; and SGD steps without its own wrapper, which imports torch._dynamo on every call. With a torch that
wraps otherwise, what is not found is left as it is.
"""

import torch


def uncompiled(*wrappers):
    """Let each of ``wrappers`` (made by torch._disable_dynamo; None or any other function: left alone) call its
    function without importing torch._dynamo."""
    for wrapper in wrappers:
        function = getattr(wrapper, "__wrapped__", None)
        if function is not None:
            setattr(function, "__dynamo_disable", function)


uncompiled(torch.optim.Optimizer.add_param_group, torch.optim.Optimizer.zero_grad,
           torch.optim.Optimizer.state_dict, torch.optim.Optimizer.load_state_dict)
_sgd_step = getattr(torch.optim.SGD.step, "__wrapped__", torch.optim.SGD.step)


class SGD(torch.optim.SGD):
    """torch.optim.SGD, its step without the wrapper (whose one other effect, no gradient recorded for the step,
    is kept)."""

    @torch.no_grad()
    def step(self, closure=None):
        return _sgd_step(self, closure)
