"""The training order: by default the official code's batches (HF's LengthGroupedSampler on rows
of one length, drawn from the globally seeded RNG through a DataLoader), epoch after epoch, on
one process and as the global batch of a DDP run; length grouping only when asked."""

import pytest
import torch
from accelerate.data_loader import BatchSamplerShard
from datasets import Dataset
from torch.utils.data import BatchSampler, DataLoader
from transformers import Trainer, TrainingArguments, set_seed
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

from steering.data import IGNORE_INDEX, Collator
from steering.loading.tiny import tiny_model
from steering.training.sampling import TrainingOrder, epoch_generator
from steering.training.trainer import SteeringTrainer


def _lengths(n: int, seed: int = 0) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(5, 60, (n,), generator=g).tolist()


def _hf_official_batches(seed: int, n: int, bs: int, window: int, epochs: int) -> list[list]:
    """What the official code's Trainer iterates: HF's sampler over rows padded to one length,
    inside a DataLoader, the global RNG seeded as Trainer.__init__ seeds it."""
    set_seed(seed)
    sampler = LengthGroupedSampler(window, lengths=[256] * n)
    loader = DataLoader(list(range(n)), batch_size=bs, sampler=sampler, collate_fn=list)
    return [batch for _ in range(epochs) for batch in loader]


def _our_batches(order: TrainingOrder, bs: int, epochs: int) -> list[list]:
    loader = DataLoader(list(range(len(order))), batch_size=bs, sampler=order, collate_fn=list)
    out = []
    for epoch in range(epochs):
        order.set_epoch(epoch)
        torch.manual_seed(1234 + epoch)  # the global RNG must not matter to our order
        out += list(loader)
    return out


@pytest.mark.parametrize(
    "seed, n, bs, accum, epochs",
    [(42, 37, 8, 2, 3), (0, 100, 4, 1, 2), (7, 16, 2, 3, 3), (123, 9, 8, 2, 2), (5, 1, 1, 1, 2)],
)
def test_default_order_is_the_official_codes_batches_epoch_after_epoch(seed, n, bs, accum, epochs):
    ours = TrainingOrder(_lengths(n), seed=seed, window=bs * accum)
    assert _our_batches(ours, bs, epochs) == _hf_official_batches(seed, n, bs, bs * accum, epochs)


def test_an_epochs_order_is_a_function_of_seed_and_epoch_alone():
    order = TrainingOrder(_lengths(30), seed=3, window=8)
    order.set_epoch(2)
    late = order.indices()
    fresh = TrainingOrder(_lengths(30), seed=3, window=8)
    fresh.set_epoch(0)
    first = fresh.indices()
    fresh.set_epoch(2)  # straight to epoch 2, as a resumed run does
    assert fresh.indices() == late
    assert first != late and sorted(first) == sorted(late) == list(range(30))
    assert TrainingOrder(_lengths(30), seed=4, window=8).indices() != first


@pytest.mark.parametrize("world, bs, accum", [(2, 4, 2), (3, 2, 1)])
def test_ddp_global_batch_is_the_one_process_batch_of_the_official_order(world, bs, accum):
    """Under DDP accelerate shards the sampler's batches over the processes; each optimizer
    step's rows over all processes are then the official single-process step's rows."""
    n, seed, epochs = 53, 11, 2
    official = _hf_official_batches(seed, n, bs * world, bs * world * accum, epochs)
    per_rank = []
    for rank in range(world):
        order = TrainingOrder(_lengths(n), seed=seed, window=bs * world * accum)
        batches = []
        for epoch in range(epochs):
            order.set_epoch(epoch)
            shard = BatchSamplerShard(
                BatchSampler(order, bs, drop_last=False), num_processes=world, process_index=rank
            )
            batches += list(shard)
        per_rank.append(batches)
    steps = len(per_rank[0])
    assert all(len(b) == steps for b in per_rank)
    rows_of_step = [sorted(i for r in range(world) for i in per_rank[r][k]) for k in range(steps)]
    # the last global batch of an epoch is topped up by accelerate (even_batches): compare
    # the full ones, and the partial one on the rows it really holds
    for k, batch in enumerate(official):
        got = rows_of_step[k]
        assert set(batch) <= set(got), (k, batch, got)
        if len(batch) == bs * world:
            assert sorted(batch) == got


def test_length_grouping_groups_the_same_stream_by_length():
    lengths = _lengths(200, seed=1)
    window = 16
    order = TrainingOrder(lengths, seed=42, window=window, grouped=True)
    for epoch in range(2):
        order.set_epoch(epoch)
        got = order.indices()
        expected = get_length_grouped_indices(
            lengths, window, generator=epoch_generator(42, epoch, len(lengths))
        )
        assert got == list(expected)

    def padding(indices: list[int]) -> int:
        batches = [indices[i : i + 8] for i in range(0, len(indices), 8)]
        return sum(
            max(lengths[j] for j in b) * len(b) - sum(lengths[j] for j in b) for b in batches
        )

    random = TrainingOrder(lengths, seed=42, window=window).indices()
    assert padding(order.indices()) < padding(random) / 3


# --- the Trainer: same batches and losses as the official layout ------------------------------

ROWS, MAX_LENGTH, BS, ACCUM, EPOCHS = 24, 24, 4, 2, 2


def _rows() -> list[dict]:
    """Rows of different lengths, the first few tokens a masked prompt."""
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(ROWS):
        n = int(torch.randint(6, MAX_LENGTH + 1, (1,), generator=g))
        ids = torch.randint(3, 300, (n,), generator=g).tolist()
        prompt = int(torch.randint(2, n - 1, (1,), generator=g))
        labels = [IGNORE_INDEX] * prompt + ids[prompt:]
        out.append({"row": i, "input_ids": ids, "attention_mask": [1] * n, "labels": labels})
    return out


class Recording:
    """A collator that records each batch's rows (the ``row`` column) before collating."""

    def __init__(self, collate) -> None:
        self.collate, self.batches = collate, []

    def __call__(self, rows):
        self.batches.append([r["row"] for r in rows])
        return self.collate(
            [{k: v for k, v in r.items() if k not in ("row", "length")} for r in rows]
        )


def _official_collate(rows):
    """The official layout: every row arrives padded to the task's max length."""
    assert {len(r["input_ids"]) for r in rows} == {MAX_LENGTH}
    return {
        k: torch.tensor([r[k] for r in rows]) for k in ("input_ids", "attention_mask", "labels")
    }


def _args(out) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=BS,
        gradient_accumulation_steps=ACCUM,
        num_train_epochs=EPOCHS,
        learning_rate=5e-3,
        seed=42,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        remove_unused_columns=False,
        disable_tqdm=True,
        train_sampling_strategy="group_by_length",
    )


def test_training_sees_the_official_batches_and_logs_the_official_losses(tmp_path):
    rows = _rows()
    # the official path: rows padded to the max length (pad id 0, mask 0, label -100) and HF's
    # own Trainer with group_by_length
    fill = {"input_ids": 0, "attention_mask": 0, "labels": IGNORE_INDEX}
    padded = [
        {"row": r["row"], "length": MAX_LENGTH}
        | {k: r[k] + [pad] * (MAX_LENGTH - len(r[k])) for k, pad in fill.items()}
        for r in rows
    ]
    official = Recording(_official_collate)
    set_seed(0)
    hf = Trainer(
        model=tiny_model("llama"),
        args=_args(tmp_path / "a"),
        train_dataset=Dataset.from_list(padded),
        data_collator=official,
    )
    hf.train()
    # ours: each batch padded to its longest row
    ours = Recording(Collator(pad_token_id=0))
    set_seed(0)
    st = SteeringTrainer(
        model=tiny_model("llama"),
        args=_args(tmp_path / "b"),
        train_dataset=Dataset.from_list([{**r, "length": len(r["input_ids"])} for r in rows]),
        data_collator=ours,
    )
    st.train()
    assert ours.batches == official.batches
    widths = {max(len(rows[i]["input_ids"]) for i in b) for b in ours.batches}
    assert len(widths) > 1  # padded per batch, not to the max length

    def losses(trainer):
        return [h["loss"] for h in trainer.state.log_history if "loss" in h]

    assert len(losses(st)) == EPOCHS * -(-ROWS // (BS * ACCUM))
    torch.testing.assert_close(
        torch.tensor(losses(st)), torch.tensor(losses(hf)), rtol=1e-5, atol=1e-6
    )
