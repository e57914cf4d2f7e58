"""The denoiser: a spatiotemporal DiT over 3D patches of a video.

Reads top-down: conditioning embedders, the block, the config, the model.
A video `[B, C, T, H, W]` is cut into `patch_t × patch_s × patch_s` patches
(padded up to whole patches, cropped back at the end), so any frame count and
size works. Each block attends over space then time (`factorized`) or over the
whole clip (`full`), then to the text tokens, then runs an MLP. Timestep,
pooled text and micro-conditions (fps, motion, quality scores) form one vector
that modulates every block through adaLN-Zero, so a fresh model is the identity
and training starts smooth. With `coarse_blocks`, the middle blocks run on merged tokens
(2×2 by default: an hourglass, as in HDiT) and the fine tokens skip past them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from train.models.attention import (
    MLP,
    Axis,
    CrossAttention,
    Grid,
    Rope3D,
    SelfAttention,
)
from train.models.positions import LearnedPos, SinCosPos


def sinusoidal(x: Tensor, freqs: Tensor) -> Tensor:
    """`[B]` values → `[B, 2 * len(freqs)]` cos/sin features."""
    args = x.float()[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=-1)


def _mlp(d_in: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, width), nn.SiLU(), nn.Linear(width, width))


class TimestepEmbedder(nn.Module):
    """t ∈ [0, 1] → width; t is scaled by 1000 so the DiT frequency ladder resolves it."""

    def __init__(self, width: int, dim: int = 256) -> None:
        super().__init__()
        freqs = torch.exp(-math.log(10_000) * torch.arange(dim // 2) / (dim // 2))
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = _mlp(dim, width)

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(sinusoidal(t * 1000, self.freqs))


class MicroEmbedder(nn.Module):
    """One scalar condition → width; NaN means unknown and maps to a learned null.

    Frequencies span 0.01..100 rad per unit because the values live on very
    different scales (fps ~ 30, CLIP score ~ 0.3, aesthetic ~ 5).
    """

    def __init__(self, width: int, dim: int = 64) -> None:
        super().__init__()
        self.register_buffer("freqs", torch.logspace(-2, 2, dim // 2), persistent=False)
        self.mlp = _mlp(dim, width)
        self.null = nn.Parameter(torch.zeros(width))

    def forward(self, value: Tensor) -> Tensor:
        known = ~torch.isnan(value)
        emb = self.mlp(sinusoidal(torch.nan_to_num(value), self.freqs))
        return torch.where(known[:, None], emb, self.null.to(emb.dtype))


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return torch.addcmul(shift, x, 1 + scale)


class DiTBlock(nn.Module):
    """Self-attention along each axis in `axes`, cross-attention to text, MLP.

    Self-attention and MLP are adaLN-Zero modulated (shift, scale, gate per
    sub-layer); cross-attention is not, as in PixArt, and its output projection
    starts at zero instead so the block still starts as the identity.
    """

    def __init__(
        self,
        width: int,
        heads: int,
        mlp_ratio: float,
        axes: tuple[Axis, ...],
        locality: float = 0.0,
    ) -> None:
        super().__init__()
        self.attn = nn.ModuleList(SelfAttention(width, heads, a, locality) for a in axes)
        self.norms = nn.ModuleList(nn.LayerNorm(width, 1e-6, False) for _ in axes)
        self.cross_norm = nn.LayerNorm(width, 1e-6)
        self.cross = CrossAttention(width, heads)
        self.mlp_norm = nn.LayerNorm(width, 1e-6, False)
        self.mlp = MLP(width, mlp_ratio)
        self.ada = nn.Linear(width, 3 * (len(axes) + 1) * width)

    def forward(
        self,
        x: Tensor,
        c: Tensor,
        ctx: Tensor,
        ctx_mask: Tensor,
        rope: tuple[Tensor, Tensor] | None,
    ) -> Tensor:
        mods = self.ada(c)[:, None, None, None].chunk(3 * (len(self.attn) + 1), dim=-1)
        for i, (norm, attn) in enumerate(zip(self.norms, self.attn, strict=True)):
            shift, scale, gate = mods[3 * i : 3 * i + 3]
            x = torch.addcmul(x, gate, attn(modulate(norm(x), shift, scale), rope))
        x = x + self.cross(self.cross_norm(x), ctx, ctx_mask)
        shift, scale, gate = mods[-3:]
        return torch.addcmul(x, gate, self.mlp(modulate(self.mlp_norm(x), shift, scale)))


@dataclass(frozen=True)
class DiTConfig:
    """Shape of the denoiser. Every field is a `--model.dit.<field>` flag."""

    in_channels: int = 3
    patch_t: int = 2
    """frames per patch"""
    patch_s: int = 4
    """pixels per patch side"""
    width: int = 128
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    attention: Literal["factorized", "full"] = "factorized"
    """factorized: space then time attention in each block; full: one 3D attention"""
    pos_embed: Literal["rope", "learned", "rope+sincos"] = "rope"
    """rope: relative positions in attention only; learned: absolute tables instead of RoPE;
    rope+sincos: RoPE plus fixed sin-cos absolute positions added to the tokens"""
    rope_theta: float = 100.0
    """RoPE's (and the sin-cos table's) frequency base, small for small grids"""
    locality: float = 0.0
    """distance penalty per token on the self-attention logits of all heads but one
    (halving from head to head); 0 = off"""
    max_grid: tuple[int, int, int] = (16, 32, 32)
    """learned pos_embed: table sizes in patches (t, h, w); larger grids interpolate"""
    text_dim: int | None = None
    """width of the text encoder's token states; None = take it from the encoder"""
    micro_conditions: tuple[str, ...] = ("fps", "motion_score", "clip_score")
    micro_dropout: float | dict[str, float] = 0.1
    """probability of dropping each micro-condition to its null while training (one
    number for all, or per name; names left out of a dict are never dropped)"""
    grad_checkpointing: bool = False
    coarse_blocks: int = 0
    """middle blocks that run on merged tokens (an hourglass; 2x2 merged: a quarter of the
    tokens, each covering 4x the frame), so the layout is settled where a token sees more of
    it, at a fraction of the cost; the fine tokens skip past them. 0 = all at full resolution"""
    coarse_merge: tuple[int, int, int] = (1, 2, 2)
    """fine tokens per coarse token along (t, h, w)"""

    def __post_init__(self) -> None:
        object.__setattr__(self, "micro_conditions", tuple(self.micro_conditions))
        object.__setattr__(self, "max_grid", tuple(self.max_grid))
        object.__setattr__(self, "coarse_merge", tuple(self.coarse_merge))
        if len(self.coarse_merge) != 3 or min(self.coarse_merge) < 1:
            raise ValueError(
                f"--model.dit.coarse_merge wants three factors >= 1 (t, h, w), "
                f"got {self.coarse_merge}"
            )
        if self.width % self.heads:
            raise ValueError(f"--model.dit.width {self.width} is not a multiple of heads")
        if self.pos_embed.startswith("rope") and self.width // self.heads < 6:
            raise ValueError("--model.dit.pos_embed rope needs width // heads >= 6")
        if self.locality < 0:
            raise ValueError(f"--model.dit.locality must be >= 0, got {self.locality}")
        if not 0 <= self.coarse_blocks <= self.depth:
            raise ValueError(
                f"--model.dit.coarse_blocks must be in [0, depth={self.depth}], "
                f"got {self.coarse_blocks}"
            )
        for name in ("patch_t", "patch_s", "width", "depth", "heads", "in_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"--model.dit.{name} must be >= 1")
        if len(set(self.micro_conditions)) != len(self.micro_conditions):
            raise ValueError(
                f"--model.dit.micro_conditions repeats a name: {self.micro_conditions}"
            )
        drops = self.micro_dropout
        extra = set(drops) - set(self.micro_conditions) if isinstance(drops, dict) else set()
        if extra:
            raise ValueError(f"--model.dit.micro_dropout names unknown conditions {sorted(extra)}")
        if not all(0 <= self.dropout_for(n) <= 1 for n in self.micro_conditions):
            raise ValueError("--model.dit.micro_dropout values must be in [0, 1]")

    def dropout_for(self, name: str) -> float:
        d = self.micro_dropout
        return float(d.get(name, 0.0)) if isinstance(d, dict) else float(d)

    @property
    def patch_volume(self) -> int:
        return self.patch_t * self.patch_s * self.patch_s

    def grid(self, t: int, h: int, w: int) -> Grid:
        """Token grid for a video of t frames of h × w (partial patches are padded)."""
        return (-(-t // self.patch_t), -(-h // self.patch_s), -(-w // self.patch_s))


class TokenMerge(nn.Module):
    """Neighbouring tokens (`factors` along t, h, w) ↔ one coarse token: the hourglass's middle.

    `merge` pads a grid that does not divide with zero tokens; `unmerge` adds the coarse
    result back onto the fine tokens (a skip connection) and crops the padding. `up` starts
    at zero, so a fresh hourglass is the identity like every other block.
    """

    def __init__(self, width: int, factors: tuple[int, int, int] = (1, 2, 2)) -> None:
        super().__init__()
        self.factors = factors
        self.down = nn.Linear(math.prod(factors) * width, width)
        self.up = nn.Linear(width, math.prod(factors) * width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def merge(self, x: Tensor) -> Tensor:
        """`[B, T, H, W, D]` → `[B, ⌈T/ft⌉, ⌈H/fs⌉, ⌈W/fs⌉, D]`."""
        (b, *grid, d), (ft, fh, fw) = x.shape, self.factors
        t, h, w = (-(-n // f) for n, f in zip(grid, self.factors, strict=True))
        x = F.pad(x, (0, 0, 0, w * fw - grid[2], 0, h * fh - grid[1], 0, t * ft - grid[0]))
        x = x.view(b, t, ft, h, fh, w, fw, d).permute(0, 1, 3, 5, 2, 4, 6, 7)
        return self.down(x.reshape(b, t, h, w, -1))

    def unmerge(self, coarse: Tensor, fine: Tensor) -> Tensor:
        """`fine` plus the coarse tokens spread back over the fine positions they merged."""
        (b, t, h, w, _), (ft, fh, fw) = coarse.shape, self.factors
        up = self.up(coarse).view(b, t, h, w, ft, fh, fw, -1).permute(0, 1, 4, 2, 5, 3, 6, 7)
        up = up.reshape(b, t * ft, h * fh, w * fw, -1)
        return fine + up[:, : fine.shape[1], : fine.shape[2], : fine.shape[3]]


class DiT(nn.Module):
    """`forward(x, t, text_states, text_mask, micro) -> velocity`, same shape as x."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        if cfg.text_dim is None:
            raise ValueError("DiTConfig.text_dim is None: set it from the text encoder's .dim")
        self.cfg = cfg
        w, patch = cfg.width, (cfg.patch_t, cfg.patch_s, cfg.patch_s)
        self.patch_embed = nn.Conv3d(cfg.in_channels, w, kernel_size=patch, stride=patch)
        self.pos = LearnedPos(w, cfg.max_grid) if cfg.pos_embed == "learned" else None
        rope = cfg.pos_embed.startswith("rope")
        self.rope = Rope3D(w // cfg.heads, cfg.rope_theta) if rope else None
        self.sincos = SinCosPos(w, cfg.rope_theta) if cfg.pos_embed == "rope+sincos" else None
        self.t_embed = TimestepEmbedder(w)
        self.micro = nn.ModuleDict({n: MicroEmbedder(w) for n in cfg.micro_conditions})
        # Text tokens are projected to the model width; a learned null token is
        # always present, so a caption dropped for CFG (mask all False) still has
        # something to attend to, and its pooled text is that null token.
        self.text_proj = nn.Sequential(nn.LayerNorm(cfg.text_dim), nn.Linear(cfg.text_dim, w))
        self.text_null = nn.Parameter(torch.randn(1, 1, w) * 0.02)
        self.pooled_mlp = _mlp(w, w)
        axes: tuple[Axis, ...] = ("space", "time") if cfg.attention == "factorized" else ("all",)
        self.blocks = nn.ModuleList(
            DiTBlock(w, cfg.heads, cfg.mlp_ratio, axes, cfg.locality) for _ in range(cfg.depth)
        )
        self.final_norm = nn.LayerNorm(w, 1e-6, False)
        self.final_ada = nn.Linear(w, 2 * w)
        self.final = nn.Linear(w, cfg.patch_volume * cfg.in_channels)
        self.hourglass = TokenMerge(w, cfg.coarse_merge) if cfg.coarse_blocks else None
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.patch_embed.weight.flatten(1))
        nn.init.zeros_(self.patch_embed.bias)
        for emb in [self.t_embed, *self.micro.values()]:
            nn.init.normal_(emb.mlp[0].weight, std=0.02)
            nn.init.normal_(emb.mlp[2].weight, std=0.02)
        # adaLN-Zero: every residual branch and the output start at zero.
        for block in self.blocks:
            for layer in (block.ada, block.cross.proj):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
        # (the hourglass's split too: the generic Linear init above undid TokenMerge's own)
        ups = [self.hourglass.up] if self.hourglass is not None else []
        for layer in (self.final_ada, self.final, *ups):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def num_tokens(self, shape: tuple[int, ...] | torch.Size) -> int:
        """Tokens the model sees for a video of `shape` `[B, C, T, H, W]`."""
        return math.prod(self.cfg.grid(*shape[-3:]))

    def drop_micro(self, micro: dict[str, Tensor], generator: torch.Generator | None) -> dict:
        """Training-time dropout: each condition → NaN (its null) with its own probability."""
        out = dict(micro)
        for name in self.cfg.micro_conditions:
            p = self.cfg.dropout_for(name)
            if name in out and p > 0:
                v = out[name].float()
                keep = torch.rand(v.shape, generator=generator, device=v.device) >= p
                out[name] = torch.where(keep, v, torch.full_like(v, math.nan))
        return out

    def condition(self, t: Tensor, pooled: Tensor, micro: dict[str, Tensor] | None) -> Tensor:
        """Timestep + pooled text + every micro-condition (missing = null) → `[B, width]`."""
        c = self.t_embed(t) + self.pooled_mlp(pooled)
        micro = micro or {}
        for name, embed in self.micro.items():
            v = micro.get(name)
            v = torch.full_like(t, math.nan) if v is None else v.to(t.device, torch.float32)
            c = c + embed(v)
        return c

    def embed_text(self, states: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Project text tokens, prepend the null token; also the masked mean (pooled)."""
        b = states.shape[0]
        ctx = torch.cat([self.text_null.expand(b, -1, -1), self.text_proj(states)], dim=1)
        mask = torch.cat([mask.new_ones(b, 1), mask.bool()], dim=1)
        weights = mask.to(ctx.dtype)[..., None]
        pooled = (ctx * weights).sum(1) / weights.sum(1)
        return ctx, mask, pooled

    def forward(
        self,
        x: Tensor,
        t: Tensor,
        text_states: Tensor,
        text_mask: Tensor,
        micro: dict[str, Tensor] | None = None,
    ) -> Tensor:
        cfg = self.cfg
        b, _, frames, height, width = x.shape
        grid = cfg.grid(frames, height, width)
        pad = (0, grid[2] * cfg.patch_s - width, 0, grid[1] * cfg.patch_s - height)
        tokens = self.patch_embed(F.pad(x, (*pad, 0, grid[0] * cfg.patch_t - frames)))
        tokens = tokens.permute(0, 2, 3, 4, 1)  # [B, T', H', W', D]
        if self.pos is not None:
            tokens = tokens + self.pos(grid)
        if self.sincos is not None:
            tokens = tokens + self.sincos(grid, tokens.device).to(tokens.dtype)
        ctx, ctx_mask, pooled = self.embed_text(text_states, text_mask)
        c = F.silu(self.condition(t, pooled, micro))
        tokens = self._run_blocks(tokens, c, ctx, ctx_mask)
        shift, scale = self.final_ada(c)[:, None, None, None].chunk(2, dim=-1)
        out = self.final(modulate(self.final_norm(tokens), shift, scale))
        return self._unpatchify(out, grid)[:, :, :frames, :height, :width]

    def _run_blocks(self, tokens: Tensor, c: Tensor, ctx: Tensor, ctx_mask: Tensor) -> Tensor:
        """The blocks in order; the middle `coarse_blocks` of them on merged tokens."""
        cfg = self.cfg
        first = (cfg.depth - cfg.coarse_blocks) // 2
        last = first + cfg.coarse_blocks
        fine, ropes = tokens, {}
        for i, block in enumerate(self.blocks):
            if self.hourglass is not None and i == first:
                fine, tokens = tokens, self.hourglass.merge(tokens)
            if self.hourglass is not None and i == last:
                tokens = self.hourglass.unmerge(tokens, fine)
            grid = tuple(tokens.shape[1:4])
            if self.rope is not None and grid not in ropes:
                ropes[grid] = self.rope(grid)
            rope = ropes.get(grid)
            if cfg.grad_checkpointing and self.training:
                tokens = checkpoint(block, tokens, c, ctx, ctx_mask, rope, use_reentrant=False)
            else:
                tokens = block(tokens, c, ctx, ctx_mask, rope)
        if self.hourglass is not None and last == cfg.depth:
            tokens = self.hourglass.unmerge(tokens, fine)
        return tokens

    def _unpatchify(self, out: Tensor, grid: Grid) -> Tensor:
        """`[B, T', H', W', pt*ps*ps*C]` → `[B, C, T'*pt, H'*ps, W'*ps]`."""
        cfg = self.cfg
        pt, ps, c = cfg.patch_t, cfg.patch_s, cfg.in_channels
        out = out.reshape(out.shape[0], *grid, pt, ps, ps, c)
        out = out.permute(0, 7, 1, 4, 2, 5, 3, 6)  # B, C, T', pt, H', ps, W', ps
        return out.reshape(out.shape[0], c, grid[0] * pt, grid[1] * ps, grid[2] * ps)
