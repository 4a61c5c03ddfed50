"""What echoforge needs of coqui-tts that coqui does not give as is, applied to loaded models only.

* **XTTS with transformers 5.** transformers renamed the generation cache argument from
  ``past_key_values`` to ``cache``: ``generate`` passes ``cache=`` to the model's forward (and
  reads ``cache`` back from its output). coqui-tts 0.28's ``GPT2InferenceModel.forward`` still
  takes ``past_key_values`` and lets ``cache`` fall into ``**kwargs``, so from the second
  generated token on it sees ``past_key_values=None`` and fails on
  ``past_key_values.get_seq_length()``. :func:`fix_xtts_cache` hands ``cache`` to it as
  ``past_key_values``, on the loaded model only, and only where coqui's forward lacks ``cache``.
* **Seeded, per-sentence VITS noise** (:func:`seeded_noise`): VITS draws its sampling noise
  with ``torch.randn`` / ``torch.randn_like`` over the whole batch. While a plan is active (on
  the calling thread), coqui's VITS modules draw instead, for each batch item, noise from a numpy
  generator seeded by that item's seed and the draw's number, laid out time-major, so the first
  ``T`` frames are the same whatever the padded length: a sentence gets the same noise alone or
  in a padded batch, on CPU or CUDA.
* **Padded batches through the HiFi-GAN decoder** (:func:`masked_decoder`): coqui's decoder has
  no mask, so past the end of a shorter item its convolutions would read decoded padding where
  the item alone reads zeros. Each decoder convolution's input is zeroed past the item's length.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
import types

import numpy as np

_local = threading.local()


def fix_xtts_cache(model) -> bool:
    """Let a loaded XTTS model generate under transformers 5 (see the module docstring).

    Returns whether the model needed the fix."""
    inference = getattr(getattr(model, "gpt", None), "gpt_inference", None)
    if inference is None or "cache" in inspect.signature(type(inference).forward).parameters:
        return False
    from transformers import GenerationMixin

    if "cache" not in inspect.signature(GenerationMixin.prepare_inputs_for_generation).parameters:
        return False  # transformers 4: generate still passes past_key_values
    if "forward" in vars(inference):
        return True  # fixed already
    forward = type(inference).forward

    @functools.wraps(forward)
    def forward_with_cache(self, *args, cache=None, **kwargs):
        if cache is not None and kwargs.get("past_key_values") is None:
            kwargs["past_key_values"] = cache
        return forward(self, *args, **kwargs)

    inference.forward = types.MethodType(forward_with_cache, inference)
    return True


class _Plan:
    def __init__(self, seeds: list[int]):
        self.seeds = seeds
        self.draws = 0

    def draw(self, shape, dtype, device):
        import torch

        shape = tuple(int(s) for s in shape)
        if not shape or shape[0] != len(self.seeds):
            raise RuntimeError(f"seeded noise for {len(self.seeds)} items, asked for shape {shape}")
        k, self.draws = self.draws, self.draws + 1
        rest = shape[1:]
        items = [np.random.default_rng([seed, k]).standard_normal(rest[::-1], dtype=np.float32).T
                 for seed in self.seeds]
        return torch.from_numpy(np.ascontiguousarray(np.stack(items))).to(device=device, dtype=dtype)


class _SeededTorch:
    """``torch`` as coqui's VITS modules see it: ``randn`` and ``randn_like`` follow the active plan."""

    def __init__(self, torch):
        self._torch = torch

    def __getattr__(self, name):
        return getattr(self._torch, name)

    def randn(self, *size, **kwargs):
        plan = getattr(_local, "plan", None)
        if plan is None:
            return self._torch.randn(*size, **kwargs)
        if len(size) == 1 and not isinstance(size[0], int):
            size = tuple(size[0])
        return plan.draw(size, kwargs.get("dtype") or self._torch.float32, kwargs.get("device") or "cpu")

    def randn_like(self, tensor, **kwargs):
        plan = getattr(_local, "plan", None)
        if plan is None:
            return self._torch.randn_like(tensor, **kwargs)
        return plan.draw(tensor.shape, kwargs.get("dtype") or tensor.dtype, kwargs.get("device") or tensor.device)


@functools.lru_cache(maxsize=1)
def _install() -> None:
    import torch
    from TTS.tts.layers.vits import stochastic_duration_predictor
    from TTS.tts.models import vits

    for module in (vits, stochastic_duration_predictor):
        module.torch = _SeededTorch(torch)


@contextlib.contextmanager
def seeded_noise(seeds: list[int]):
    """VITS noise of batch item ``i`` drawn from ``seeds[i]`` while the block runs (this thread only)."""
    _install()
    _local.plan = _Plan(list(seeds))
    try:
        yield
    finally:
        _local.plan = None


@contextlib.contextmanager
def masked_decoder(model):
    """Zero each waveform-decoder convolution's input past its item's length (VITS, batch > 1)."""
    import torch

    state: dict = {}

    def frames(module, args, kwargs):  # model.flow(z_p, y_mask, g=..., reverse=True)
        y_mask = args[1] if len(args) > 1 else kwargs.get("x_mask")
        state["lengths"], state["frames"] = y_mask.sum(dim=(1, 2)).long(), y_mask.shape[-1]

    def mask(module, args):
        x = args[0]
        valid = state["lengths"] * x.shape[-1] // state["frames"]
        keep = torch.arange(x.shape[-1], device=x.device)[None, :] < valid[:, None].to(x.device)
        return (x * keep[:, None, :].to(x.dtype), *args[1:])

    handles = [model.flow.register_forward_pre_hook(frames, with_kwargs=True)]
    for name, module in model.waveform_decoder.named_modules():
        if isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)) and not name.startswith("cond"):
            handles.append(module.register_forward_pre_hook(mask))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
