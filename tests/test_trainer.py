"""HF Trainer on a SteeredModel over a tied-embedding base: checkpoints hold adapters only,
and resuming from one gives the same adapter as an uninterrupted run."""

import torch
from safetensors.torch import load_file
from transformers import Trainer, TrainingArguments, default_data_collator

from steering import SteeredModel, SteeringConfig
from steering.tiny import tiny_model
from tests.conftest import randomize


def _data(n=32, length=12):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 500, (n, length), generator=g)
    return [{"input_ids": x, "attention_mask": torch.ones_like(x), "labels": x} for x in ids]


def _trainer(out_dir, max_steps):
    base = tiny_model("llama", tie_word_embeddings=True)
    assert base.lm_head.weight is base.model.embed_tokens.weight
    model = SteeredModel(base, SteeringConfig(rank=4))
    args = TrainingArguments(
        output_dir=str(out_dir),
        max_steps=max_steps,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        learning_rate=5e-2,
        lr_scheduler_type="linear",
        warmup_steps=0.1,  # transformers 5: a float < 1 is the warmup ratio
        save_strategy="steps",
        save_steps=2,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        seed=7,
        data_seed=7,
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    return Trainer(
        model=model, args=args, train_dataset=_data(), data_collator=default_data_collator
    )


def test_trainer_checkpoints_adapters_only_and_resumes_exactly(tmp_path):
    straight = _trainer(tmp_path / "a", max_steps=4)
    straight.train()
    final = {k: v.clone() for k, v in straight.model.state_dict().items()}
    assert any(v.abs().sum() > 0 for k, v in final.items() if k.endswith("up.weight"))

    saved = load_file(tmp_path / "a" / "checkpoint-2" / "model.safetensors")
    assert set(saved) == set(final)  # adapter tensors only: no tied-embedding clash

    resumed = _trainer(tmp_path / "b", max_steps=4)  # a fresh process picking up checkpoint-2
    randomize(resumed.model, seed=3)  # only a real restore of checkpoint-2 can undo this
    resumed.train(resume_from_checkpoint=str(tmp_path / "a" / "checkpoint-2"))
    for k, v in resumed.model.state_dict().items():
        torch.testing.assert_close(v, final[k], rtol=0, atol=1e-7)
    base_after = resumed.model.base_model
    assert not any(p.requires_grad for p in base_after.parameters())
