"""tinywan: Wan 2.1's text-to-video architecture at toy scale -- a T5-style
text encoder, a flow-matching DiT with classifier-free guidance, a causal
3-D VAE decoder -- untrained, with weights made from a seed, served as the
three stages of a disagg pipeline (see ``disagg.tinywan.stages``).

    python3 -m disagg.tinywan.run --prompt "..." -o out

runs the three stages in one process, without daemons.
"""

__all__ = ["Encoder", "Transformer", "Decoder", "CONFIG"]


def __getattr__(name):
    # PyTorch loads only when a stage is wanted.
    if name in ("Encoder", "Transformer", "Decoder"):
        from . import stages
        return getattr(stages, name)
    if name == "CONFIG":
        from .model import CONFIG
        return CONFIG
    raise AttributeError("module 'disagg.tinywan' has no attribute %r"
                         % name)
