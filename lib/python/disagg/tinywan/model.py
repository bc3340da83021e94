"""model: Wan 2.1's text-to-video architecture at toy scale, untrained.

Three networks, named and wired as in Wan 2.1 (wan/modules/t5.py,
model.py, vae.py) so that their state_dict keys read the same:

- ``TextEncoder``: umT5-style.  The prompt's UTF-8 bytes are the tokens
  (byte + 1; 0 pads), an embedding, ``text_layers`` blocks of RMSNorm,
  self-attention with a per-layer bucketed relative position bias (no
  1/sqrt(d), as in T5) and a gated-GELU feed-forward, a final RMSNorm; the
  rows past the prompt's length are zeroed, as Wan pads the context.
- ``WanDiT``: WanModel.  A (1, 2, 2) patch embedding; a sinusoidal time
  embedding through an MLP and a projection to six modulation vectors per
  block; blocks of adaLN-modulated self-attention with RMS-normed q/k and
  3-D RoPE, cross-attention to the embedded text, and a GELU feed-forward;
  a modulated head that unpatchifies to the latent's shape.
- ``VAEDecoder``: WanVAE's Decoder3d.  Causal 3-D convolutions (time padded
  on the past side only), decoded one latent frame at a time with a cache
  of the frames before, as Wan does: the first latent frame gives one
  picture, each later one four; x8 in space through nearest-neighbour
  upsampling and a 3x3 convolution, three times.

Weights come from a seed (``init_weights``) and are chosen so that the
untrained pipeline still makes a picture that moves smoothly: the decoder's
convolutions start as a smoothing kernel times a random channel mix (plus
a little noise; at the latent's frame rate also averaging the frames
before), its time upsampling as linear interpolation; and so that the
prompt still changes the video, the DiT's head has small random weights
(std 0.02, not Wan's zeros) and its text embedding xavier weights (not
Wan's std 0.02).
"""

import math

import torch
import torch.nn as nn

from . import ops

# The shape of the model.  A weights file records it, and one made for
# another shape is refused.  Integers and strings only: PyTorch's
# weights-only loader (1.13) reads no floats.
CONFIG = {
    "model": "tinywan-t2v",
    "version": 1,
    # text encoder
    "vocab": 257,               # 256 bytes + padding (0)
    "text_len": 64,
    "text_dim": 64,
    "text_heads": 2,
    "text_ffn": 128,
    "text_layers": 2,
    "text_buckets": 32,
    "text_max_distance": 128,
    # DiT
    "in_dim": 16,
    "out_dim": 16,
    "dim": 64,
    "ffn_dim": 256,
    "heads": 2,
    "layers": 2,
    "freq_dim": 256,
    "patch": [1, 2, 2],
    # VAE decoder: channels at latent, 1/4 and 1/2, full resolution
    "vae_dims": [32, 16, 8, 8],
    "vae_stride": [4, 8, 8],
    "z_dim": 16,
    # sampler
    "num_train_timesteps": 1000,
}

EPS = 1e-6

# Wan 2.1's sample_neg_prompt, used as Wan does when a request has none.
DEFAULT_NEGATIVE = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，"
    "整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，"
    "画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
    "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走")


# ---------------------------------------------------------------- text

def tokenize(text, text_len):
    """UTF-8 bytes + 1, truncated to text_len.  Returns (ids [text_len]
    int64 padded with 0, length)."""
    raw = text.encode("utf-8")[:text_len]
    ids = torch.zeros(text_len, dtype=torch.int64)
    if raw:
        ids[:len(raw)] = torch.tensor(list(raw), dtype=torch.int64) + 1
    return ids, len(raw)


class T5RelativeEmbedding(nn.Module):
    def __init__(self, buckets, heads, max_distance):
        super().__init__()
        self.buckets = buckets
        self.max_distance = max_distance
        self.embedding = nn.Embedding(buckets, heads)

    def forward(self, lq, lk):
        dev = self.embedding.weight.device
        rel = (torch.arange(lk, device=dev).unsqueeze(0) -
               torch.arange(lq, device=dev).unsqueeze(1))
        return self.embedding(self._bucket(rel)).permute(2, 0, 1)  # [H,q,k]

    def _bucket(self, rel):
        # T5's bidirectional buckets: half for each sign, exact up to
        # max_exact, logarithmic beyond.
        half = self.buckets // 2
        out = (rel > 0).long() * half
        rel = rel.abs()
        exact = half // 2
        large = exact + (torch.log(rel.clamp(min=1).float() / exact) /
                         math.log(self.max_distance / exact) *
                         (half - exact)).long()
        large = large.clamp(max=half - 1)
        return out + torch.where(rel < exact, rel, large)


class T5Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.o = nn.Linear(dim, dim, bias=False)

    def forward(self, x, bias):
        L, D = x.shape
        n, d = self.heads, D // self.heads
        q = ops.lin(x, self.q).view(1, L, n, d)
        k = ops.lin(x, self.k).view(1, L, n, d)
        v = ops.lin(x, self.v).view(1, L, n, d)
        y = ops.attention(q, k, v, bias=bias.unsqueeze(0), scale=1.0)
        return ops.lin(y.reshape(L, D), self.o)


class T5FeedForward(nn.Module):
    def __init__(self, dim, ffn):
        super().__init__()
        self.gate = nn.Linear(dim, ffn, bias=False)
        self.fc1 = nn.Linear(dim, ffn, bias=False)
        self.fc2 = nn.Linear(ffn, dim, bias=False)

    def forward(self, x):
        g = nn.functional.gelu(ops.lin(x, self.gate), approximate="tanh")
        return ops.lin(ops.lin(x, self.fc1) * g, self.fc2)


class T5Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        dim = c["text_dim"]
        self.norm1 = nn.Parameter(torch.ones(dim))
        self.attn = T5Attention(dim, c["text_heads"])
        self.norm2 = nn.Parameter(torch.ones(dim))
        self.ffn = T5FeedForward(dim, c["text_ffn"])
        self.pos_embedding = T5RelativeEmbedding(
            c["text_buckets"], c["text_heads"], c["text_max_distance"])

    def forward(self, x, mask_bias):
        L = x.shape[0]
        bias = self.pos_embedding(L, L) + mask_bias
        x = x + self.attn(ops.rms(x, self.norm1, eps=EPS), bias)
        return x + self.ffn(ops.rms(x, self.norm2, eps=EPS))


class TextEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.text_len = c["text_len"]
        self.token_embedding = nn.Embedding(c["vocab"], c["text_dim"])
        self.blocks = nn.ModuleList(T5Block(c)
                                    for _ in range(c["text_layers"]))
        self.norm = nn.Parameter(torch.ones(c["text_dim"]))

    @torch.no_grad()
    def forward(self, text):
        """text (str) -> context [text_len, text_dim] float32, zero past the
        prompt's bytes."""
        dev = self.norm.device
        ids, n = tokenize(text, self.text_len)
        ids = ids.to(dev)
        x = self.token_embedding(ids)
        # Padding keys are masked with a large finite number, so that an
        # empty text gives zeros rather than NaN.
        mask_bias = torch.zeros(self.text_len, device=dev)
        mask_bias[n:] = -1e9
        for block in self.blocks:
            x = block(x, mask_bias.view(1, 1, -1))
        x = ops.rms(x, self.norm, eps=EPS)
        x[n:] = 0
        return x


# ---------------------------------------------------------------- DiT

def sinusoidal_embedding_1d(dim, position):
    """Wan's: cos then sin of position * 10000^(-i/half), in float64."""
    half = dim // 2
    position = position.to(torch.float64)
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64,
                                             device=position.device) / half)
    s = torch.outer(position, freqs)
    return torch.cat([torch.cos(s), torch.sin(s)], dim=1)


def rope_tables(grid, head_dim, device, theta=10000.0):
    """cos and sin [F*H*W, head_dim/2] of Wan's 3-D RoPE: the head's
    complex pairs split into time, height, width parts of
    c - 2(c//3), c//3, c//3 (c = head_dim/2)."""
    c = head_dim // 2
    parts = [c - 2 * (c // 3), c // 3, c // 3]
    angles = []
    for axis, (n, m) in enumerate(zip(grid, parts)):
        inv = 1.0 / torch.pow(theta, torch.arange(0, 2 * m, 2,
                                                  dtype=torch.float64) /
                              (2 * m))
        a = torch.outer(torch.arange(n, dtype=torch.float64), inv)
        shape = [1, 1, 1, m]
        shape[axis] = n
        angles.append(a.view(shape).expand(grid[0], grid[1], grid[2], m))
    a = torch.cat(angles, dim=3).reshape(-1, c)
    return (torch.cos(a).float().to(device), torch.sin(a).float().to(device))


def rope_apply(x, cos, sin):
    """x [B, N, H, D]: rotate each (even, odd) pair by the token's angle."""
    B, N, H, D = x.shape
    xr = x.reshape(B, N, H, D // 2, 2)
    x0, x1 = xr[..., 0], xr[..., 1]
    c, s = cos.view(1, N, 1, D // 2), sin.view(1, N, 1, D // 2)
    return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], -1).reshape(
        B, N, H, D)


class WanRMSNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return ops.rms(x, self.weight, eps=EPS)


class WanSelfAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = WanRMSNorm(dim)
        self.norm_k = WanRMSNorm(dim)

    def forward(self, x, rope):
        B, N, D = x.shape
        n, d = self.heads, D // self.heads
        q = rope_apply(self.norm_q(ops.lin(x, self.q)).view(B, N, n, d),
                       *rope)
        k = rope_apply(self.norm_k(ops.lin(x, self.k)).view(B, N, n, d),
                       *rope)
        v = ops.lin(x, self.v).view(B, N, n, d)
        return ops.lin(ops.attention(q, k, v).reshape(B, N, D), self.o)


class WanCrossAttention(WanSelfAttention):
    def forward(self, x, context):
        B, N, D = x.shape
        n, d = self.heads, D // self.heads
        Bc, L = context.shape[0], context.shape[1]
        q = self.norm_q(ops.lin(x, self.q)).view(B, N, n, d)
        k = self.norm_k(ops.lin(context, self.k)).view(Bc, L, n, d)
        v = ops.lin(context, self.v).view(Bc, L, n, d)
        y = ops.attention(q, k, v)
        return ops.lin(y.reshape(y.shape[0], N, D), self.o)


class WanAttentionBlock(nn.Module):
    def __init__(self, dim, ffn_dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=EPS, elementwise_affine=False)
        self.self_attn = WanSelfAttention(dim, heads)
        self.norm3 = nn.LayerNorm(dim, eps=EPS, elementwise_affine=True)
        self.cross_attn = WanCrossAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=EPS, elementwise_affine=False)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim),
                                 nn.GELU(approximate="tanh"),
                                 nn.Linear(ffn_dim, dim))
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim ** 0.5)

    def forward(self, x, e, context, rope):
        """x [1 or B, N, dim] (1: the same for every context, as at the
        first block of a guided step), e [1, 6, dim], context [B, L, dim]."""
        e = (self.modulation + e).chunk(6, dim=1)
        y = self.self_attn(self.norm1(x) * (1 + e[1]) + e[0], rope)
        x = x + y * e[2]
        x = x + self.cross_attn(self.norm3(x), context)
        h = self.norm2(x) * (1 + e[4]) + e[3]
        h = ops.lin(nn.functional.gelu(ops.lin(h, self.ffn[0]),
                                       approximate="tanh"), self.ffn[2])
        return x + h * e[5]


class Head(nn.Module):
    def __init__(self, dim, out_dim, patch):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=EPS, elementwise_affine=False)
        self.head = nn.Linear(dim, out_dim * math.prod(patch))
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / dim ** 0.5)

    def forward(self, x, e):
        e = (self.modulation + e.unsqueeze(1)).chunk(2, dim=1)
        return ops.lin(self.norm(x) * (1 + e[1]) + e[0], self.head)


class WanDiT(nn.Module):
    def __init__(self, c):
        super().__init__()
        dim = c["dim"]
        self.patch = tuple(c["patch"])
        self.dim, self.heads = dim, c["heads"]
        self.freq_dim = c["freq_dim"]
        self.out_dim = c["out_dim"]
        self.patch_embedding = nn.Conv3d(c["in_dim"], dim, self.patch,
                                         stride=self.patch)
        self.text_embedding = nn.Sequential(
            nn.Linear(c["text_dim"], dim), nn.GELU(approximate="tanh"),
            nn.Linear(dim, dim))
        self.time_embedding = nn.Sequential(
            nn.Linear(self.freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(),
                                             nn.Linear(dim, dim * 6))
        self.blocks = nn.ModuleList(
            WanAttentionBlock(dim, c["ffn_dim"], self.heads)
            for _ in range(c["layers"]))
        self.head = Head(dim, self.out_dim, self.patch)

    def embed_text(self, context):
        """context [B, text_len, text_dim] -> [B, text_len, dim]; the same
        for every step, so a sampler computes it once."""
        t = self.text_embedding
        return ops.lin(nn.functional.gelu(ops.lin(context, t[0]),
                                          approximate="tanh"), t[2])

    def grid(self, latent_shape):
        _, f, h, w = latent_shape
        p = self.patch
        return (f // p[0], h // p[1], w // p[2])

    def rope(self, grid, device):
        return rope_tables(grid, self.dim // self.heads, device)

    def patchify(self, x):
        """[C, F, H, W] -> tokens [1, N, dim]: the (1,2,2) Conv3d with
        stride = kernel, as a matrix product."""
        C, Fr, H, W = x.shape
        p = self.patch
        g = (Fr // p[0], H // p[1], W // p[2])
        x = x.reshape(C, g[0], p[0], g[1], p[1], g[2], p[2])
        x = x.permute(1, 3, 5, 0, 2, 4, 6).reshape(-1, C * math.prod(p))
        w = self.patch_embedding.weight.reshape(self.dim, -1)
        return ops.linear(x, w, self.patch_embedding.bias).unsqueeze(0)

    def unpatchify(self, x, grid):
        """[B, N, out_dim * prod(patch)] -> [B, out_dim, F, H, W]."""
        B = x.shape[0]
        p, c = self.patch, self.out_dim
        x = x.view(B, grid[0], grid[1], grid[2], p[0], p[1], p[2], c)
        x = torch.einsum("bfhwpqrc->bcfphqwr", x)
        return x.reshape(B, c, grid[0] * p[0], grid[1] * p[1],
                         grid[2] * p[2])

    @torch.no_grad()
    def forward(self, x, t, context, rope, grid):
        """x [C, F, H, W] latents (one video), t a float timestep (0..1000),
        context [B, L, dim] from embed_text -> velocity [B, C, F, H, W],
        one per context row."""
        dev = x.device
        tt = torch.tensor([t], dtype=torch.float64, device=dev)
        e = self.time_embedding[0](
            sinusoidal_embedding_1d(self.freq_dim, tt).float())
        e = self.time_embedding[2](nn.functional.silu(e))     # [1, dim]
        e0 = self.time_projection[1](nn.functional.silu(e))
        e0 = e0.view(1, 6, self.dim)
        h = self.patchify(x)          # [1, N, dim]: shared until cross-attn
        for block in self.blocks:
            h = block(h, e0, context, rope)
        if h.shape[0] != context.shape[0]:
            h = h.expand(context.shape[0], -1, -1)
        return self.unpatchify(self.head(h, e), grid)


# ---------------------------------------------------------------- sampler

def flow_sigmas(steps, shift, num_train_timesteps=1000):
    """Wan's flow-matching schedule: `steps` sigmas from 1 - 1/T down, each
    shifted s -> shift*s / (1 + (shift-1)*s), then a final 0."""
    hi = 1.0 - 1.0 / num_train_timesteps
    sig = [hi - (hi - 0.0) * i / steps for i in range(steps)]
    sig = [shift * s / (1.0 + (shift - 1.0) * s) for s in sig]
    return sig + [0.0]


# ---------------------------------------------------------------- VAE

class CausalConv3d(nn.Conv3d):
    """Wan's CausalConv3d, run by ops.causal_conv3d on [T, C, H, W]
    chunks with a per-module cache in `state`."""

    def __init__(self, cin, cout, kernel):
        super().__init__(cin, cout, kernel)

    def forward(self, x, state):
        y, state[self] = ops.causal_conv3d(x, self.weight, self.bias,
                                           state.get(self))
        return y

    def remember(self, x, state):
        """Keep x as the past of the next chunk without convolving it."""
        kt = self.weight.shape[2]
        prev = state.get(self)
        if prev is None:
            prev = x.new_zeros((kt - 1,) + tuple(x.shape[1:]))
        state[self] = torch.cat([prev, x], 0)[-(kt - 1):].clone()


class RMSNormC(nn.Module):
    """RMS norm over the channels of [T, C, H, W] (Wan's RMS_norm)."""

    def __init__(self, dim):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return ops.rms(x, self.gamma.view(1, -1, 1, 1), dim=1, eps=EPS)


class ResidualBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1 = RMSNormC(cin)
        self.conv1 = CausalConv3d(cin, cout, 3)
        self.norm2 = RMSNormC(cout)
        self.conv2 = CausalConv3d(cout, cout, 3)
        self.shortcut = CausalConv3d(cin, cout, 1) if cin != cout else None

    def forward(self, x, state):
        h = self.shortcut(x, state) if self.shortcut is not None else x
        y = self.conv1(nn.functional.silu(self.norm1(x)), state)
        y = self.conv2(nn.functional.silu(self.norm2(y)), state)
        return h + y


class AttentionBlock(nn.Module):
    """Single-head self-attention over each frame's pixels."""

    def __init__(self, dim):
        super().__init__()
        self.norm = RMSNormC(dim)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x):
        T, C, H, W = x.shape
        h = self.norm(x).permute(0, 2, 3, 1).reshape(T, H * W, C)
        qkv = ops.linear(h, self.to_qkv.weight.view(3 * C, C),
                         self.to_qkv.bias)
        q, k, v = qkv.view(T, H * W, 1, 3 * C).chunk(3, dim=-1)
        y = ops.attention(q, k, v).reshape(T, H * W, C)
        y = ops.linear(y, self.proj.weight.view(C, C), self.proj.bias)
        return x + y.view(T, H, W, C).permute(0, 3, 1, 2)


class Resample(nn.Module):
    """x2 in space (nearest, then a 3x3 conv to `cout` channels); with
    `time`, first x2 in time through a causal (3,1,1) conv to 2C channels
    read as two frames, skipped for the video's first frame."""

    def __init__(self, cin, cout, time):
        super().__init__()
        self.time_conv = CausalConv3d(cin, cin * 2, (3, 1, 1)) if time \
            else None
        self.resample = nn.Sequential(nn.Upsample(scale_factor=2.0),
                                      nn.Conv2d(cin, cout, 3, padding=1))

    def forward(self, x, state, first):
        if self.time_conv is not None:
            if first:
                self.time_conv.remember(x, state)
            else:
                T, C, H, W = x.shape
                y = self.time_conv(x, state)                 # [T, 2C, H, W]
                x = y.view(T, 2, C, H, W).reshape(2 * T, C, H, W)
        x = nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
        conv = self.resample[1]
        return ops.conv2d(x, conv.weight, conv.bias, padding=1)


class VAEDecoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["vae_dims"]
        self.conv1 = CausalConv3d(c["z_dim"], d[0], 3)
        self.middle = nn.ModuleList([ResidualBlock(d[0], d[0]),
                                     AttentionBlock(d[0]),
                                     ResidualBlock(d[0], d[0])])
        self.upsamples = nn.ModuleList([
            ResidualBlock(d[0], d[0]),
            Resample(d[0], d[1], time=True),
            ResidualBlock(d[1], d[1]),
            Resample(d[1], d[2], time=True),
            Resample(d[2], d[3], time=False),
        ])
        self.head_norm = RMSNormC(d[3])
        self.head = CausalConv3d(d[3], 3, 3)

    @torch.no_grad()
    def decode_chunk(self, z, state, first):
        """One latent frame z [C, 1, h, w] -> RGB [T, 3, 8h, 8w] in [-1, 1]
        (T = 1 for the video's first latent frame, else 4)."""
        x = z.permute(1, 0, 2, 3)                         # [1, C, h, w]
        x = self.conv1(x, state)
        for m in self.middle:
            x = m(x, state) if isinstance(m, ResidualBlock) else m(x)
        for m in self.upsamples:
            x = m(x, state, first) if isinstance(m, Resample) else \
                m(x, state)
        x = self.head(nn.functional.silu(self.head_norm(x)), state)
        return x.clamp_(-1.0, 1.0)

    def decode(self, z):
        """Latents [C, F, h, w] -> frames, one chunk at a time (a
        generator of [T, 3, H, W])."""
        state = {}
        for i in range(z.shape[1]):
            yield self.decode_chunk(z[:, i:i + 1], state, i == 0)


# ---------------------------------------------------------------- weights

_SMOOTH = torch.tensor([1.0, 2.0, 1.0])


def _smooth_kernel(kh, kw):
    if (kh, kw) == (1, 1):
        return torch.ones(1, 1)
    k = torch.outer(_SMOOTH, _SMOOTH)
    return k / k.sum()


def _smooth_conv(weight, g, gain=1.0, noise=0.02, time=None):
    """weight [O, I, (kt,) kh, kw] := random channel mix (std gain/sqrt(I))
    times a normalised [1,2,1]^2 spatial kernel (times `time`, a kernel over
    the time taps, for 3-D), plus N(0, noise^2 / fan_in)."""
    O, I = weight.shape[:2]
    mix = torch.randn(O, I, generator=g) * (gain / I ** 0.5)
    sp = _smooth_kernel(*weight.shape[-2:])
    if weight.dim() == 5:
        kt = weight.shape[2]
        tk = time if time is not None else torch.eye(kt)[-1]
        k = tk.view(kt, 1, 1) * sp
    else:
        k = sp
    fan = weight[0].numel()
    w = mix.view(O, I, *([1] * k.dim())) * k + \
        torch.randn(weight.shape, generator=g) * (noise / fan ** 0.5)
    weight.copy_(w)


def _normal(t, g, std):
    t.copy_(torch.randn(t.shape, generator=g) * std)


def _xavier(t, g):
    fan_out, fan_in = t.shape[0], t[0].numel()
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    t.copy_((torch.rand(t.shape, generator=g) * 2 - 1) * bound)


@torch.no_grad()
def init_text(m, g, c):
    dim, ffn = c["text_dim"], c["text_ffn"]
    d = dim // c["text_heads"]
    _normal(m.token_embedding.weight, g, 1.0)
    for b in m.blocks:
        _normal(b.attn.q.weight, g, (dim * d) ** -0.5)
        _normal(b.attn.k.weight, g, dim ** -0.5)
        _normal(b.attn.v.weight, g, dim ** -0.5)
        _normal(b.attn.o.weight, g, dim ** -0.5)
        _normal(b.ffn.gate.weight, g, dim ** -0.5)
        _normal(b.ffn.fc1.weight, g, dim ** -0.5)
        _normal(b.ffn.fc2.weight, g, ffn ** -0.5)
        _normal(b.pos_embedding.embedding.weight, g,
                (2 * c["text_buckets"] * c["text_heads"]) ** -0.5)


@torch.no_grad()
def init_dit(m, g, c):
    # Wan's init_weights: xavier linears, zero biases, N(0, 0.02) for the
    # time embedding; the head small random, not zero.  Two departures so
    # that the prompt visibly matters in an untrained model: the text
    # embedding stays xavier (Wan: N(0, 0.02), which leaves the context a
    # whisper), and the head is N(0, 0.02) rather than zero.
    dim = c["dim"]
    for name, mod in m.named_modules():
        if isinstance(mod, nn.Linear):
            _xavier(mod.weight, g)
            mod.bias.zero_()
    _xavier(m.patch_embedding.weight.view(dim, -1), g)
    m.patch_embedding.bias.zero_()
    for mod in m.time_embedding:
        if isinstance(mod, nn.Linear):
            _normal(mod.weight, g, 0.02)
    for b in m.blocks:
        _normal(b.modulation, g, dim ** -0.5)
        b.norm3.weight.fill_(1.0)
        b.norm3.bias.zero_()
        b.self_attn.norm_q.weight.fill_(1.0)
        b.self_attn.norm_k.weight.fill_(1.0)
        b.cross_attn.norm_q.weight.fill_(1.0)
        b.cross_attn.norm_k.weight.fill_(1.0)
    _normal(m.head.modulation, g, dim ** -0.5)
    _normal(m.head.head.weight, g, 0.02)
    m.head.head.bias.zero_()


@torch.no_grad()
def init_vae(m, g, c):
    for name, mod in m.named_modules():
        if isinstance(mod, RMSNormC):
            mod.gamma.fill_(1.0)
    # At the latent's frame rate the 3x3x3 convolutions also average the
    # frames before (causally), so that the picture drifts rather than
    # jumps from one latent frame to the next.
    past = torch.tensor([0.3, 0.3, 0.4])
    m.conv1.bias.zero_()
    _smooth_conv(m.conv1.weight, g, gain=1.0, time=past)
    for blk in list(m.middle) + list(m.upsamples):
        if isinstance(blk, ResidualBlock):
            _smooth_conv(blk.conv1.weight, g, gain=1.0, time=past)
            _smooth_conv(blk.conv2.weight, g, gain=0.5, time=past)
            blk.conv1.bias.zero_()
            blk.conv2.bias.zero_()
            if blk.shortcut is not None:
                _smooth_conv(blk.shortcut.weight, g)
                blk.shortcut.bias.zero_()
        elif isinstance(blk, AttentionBlock):
            _normal(blk.to_qkv.weight, g, blk.to_qkv.weight.shape[1] ** -0.5)
            blk.to_qkv.bias.zero_()
            _normal(blk.proj.weight, g, 0.02)
            blk.proj.bias.zero_()
        elif isinstance(blk, Resample):
            conv = blk.resample[1]
            _smooth_conv(conv.weight, g, gain=1.0)
            conv.bias.zero_()
            if blk.time_conv is not None:
                # Two frames per frame: the midpoint of the one before and
                # this one, then this one -- linear interpolation in time.
                w = blk.time_conv.weight                # [2C, C, 3, 1, 1]
                C = w.shape[1]
                eye = torch.eye(C)
                taps = torch.zeros(2, C, C, 3)
                taps[0, :, :, 1] = 0.5 * eye
                taps[0, :, :, 2] = 0.5 * eye
                taps[1, :, :, 2] = eye
                noise = torch.randn(w.shape, generator=g) * (0.02 / C ** 0.5)
                w.copy_(taps.reshape(2 * C, C, 3, 1, 1) + noise)
                blk.time_conv.bias.zero_()
    _smooth_conv(m.head.weight, g, gain=1.2)
    m.head.bias.zero_()


def build(config=None):
    """The three modules (uninitialised)."""
    c = config or CONFIG
    return {"encoder": TextEncoder(c), "dit": WanDiT(c),
            "vae": VAEDecoder(c)}


def init_weights(seed, config=None):
    """{"encoder", "dit", "vae"} -> state_dict made from `seed` alone: a
    torch.Generator per network, seeded with seed + i * 0x9E3779B97F4A7C15
    (mod 2^64; i = 0, 1, 2), so that each network's weights depend on the
    seed and its own shape only."""
    c = config or CONFIG
    mods = build(c)
    for i, (part, init) in enumerate((("encoder", init_text),
                                      ("dit", init_dit),
                                      ("vae", init_vae))):
        g = torch.Generator().manual_seed(
            (int(seed) + i * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
        init(mods[part], g, c)
    return {k: {n: t.detach().clone() for n, t in m.state_dict().items()}
            for k, m in mods.items()}
