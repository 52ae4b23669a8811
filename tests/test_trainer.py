"""HF Trainer on a SteeredModel over a tied-embedding base: checkpoints hold adapters only,
and resuming from one gives the same adapter as an uninterrupted run."""

import torch
from safetensors.torch import load_file
from transformers import Trainer, TrainingArguments, default_data_collator

from steering import SteeredModel, SteeringConfig
from steering.loading.tiny import tiny_model
from tests.conftest import cpu_env, randomize


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


def test_one_process_trains_on_one_device_and_keeps_its_batch(tmp_path):
    """A single process that sees several GPUs would wrap the model in nn.DataParallel and
    draw bs rows per GPU (n_gpu is what the Trainer reads for both); we keep it at one."""
    from steering.training.trainer import one_device_per_process

    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, use_cpu=True)
    assert args.n_gpu == 0 and args.train_batch_size == 8
    args._n_gpu = 4  # what the Trainer's own set-up finds in one process on a 4-GPU machine
    assert args.train_batch_size == 32
    one_device_per_process(args)
    assert args.n_gpu == 1 and args.train_batch_size == 8


def test_a_single_process_on_a_gpu_other_than_the_first_is_refused():
    """The Trainer moves one process's model to the first visible GPU: --device cuda:1
    would be ignored, so it is refused with the way to get GPU 1."""
    import pytest

    from steering.training.trainer import check_trainer_device

    with pytest.raises(ValueError, match="run with CUDA_VISIBLE_DEVICES=1 and --device cuda"):
        check_trainer_device(torch.device("cuda:1"), world=1)
    for device, world in (("cuda:0", 1), ("cuda", 1), ("cuda:1", 2), ("cpu", 1)):
        check_trainer_device(torch.device(device), world)  # what the Trainer does itself


def test_a_nan_in_another_processs_shard_stops_every_process(tmp_path):
    """FSDP shards the gradients (DTensor): each process sees its own part, and the check is
    agreed over the group, so the process whose shard is finite stops too (else it would wait
    for the stopped one in its next collective)."""
    import subprocess
    import sys
    from pathlib import Path

    from tests.shards import check_shards

    store, out = str(tmp_path / "store"), str(tmp_path / "answer")
    other = subprocess.Popen(  # rank 1; this process is rank 0
        [
            sys.executable,
            "-c",
            f"from tests.shards import check_shards as c; c(1, {store!r}, {out!r})",
        ],
        cwd=Path(__file__).parent.parent,
        env=cpu_env(),
    )
    check_shards(0, store, out)
    assert other.wait(timeout=120) == 0
    assert (tmp_path / "answer.0").read_text() == "[1.0, 2.0] False"
    assert (tmp_path / "answer.1").read_text() == "[nan, 4.0] False"


def test_finite_gradients_pass_in_one_process():
    from steering.training.gradients import all_finite

    assert all_finite([torch.ones(3), torch.zeros(2)]) and all_finite([])
    assert not all_finite([torch.ones(3), torch.tensor([float("inf")])])
