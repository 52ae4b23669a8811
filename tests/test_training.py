"""train(): the seed fixes everything, adapter initialisation included."""

import torch
from safetensors.torch import load_file

from steering.loading.tiny import save_tiny_model
from steering.tasks import get_task
from steering.tasks.files import write_prepared
from steering.training.run import TrainSettings, train


def test_same_seed_same_adapter_other_seed_other_adapter(tmp_path):
    save_tiny_model(tmp_path / "m", "llama", hidden_size=32, num_layers=2)
    task = get_task("BoolQ")
    write_prepared(
        task, task.make_splits(task.synthetic(scale=0.02)), tmp_path / "d", {"kind": "synthetic"}
    )

    def run(seed, name):
        torch.manual_seed(1000 + seed * 7 + len(name))  # global RNG state differs on purpose
        train(
            TrainSettings(
                model_name=str(tmp_path / "m"),
                dataset_name="BoolQ",
                data_dir=str(tmp_path / "d"),
                seed=seed,
                max_train_samples=16,
                output_dir=str(tmp_path / name),
                progress=False,
            )
        )
        return load_file(tmp_path / name / "adapter.safetensors")

    a, b, c = run(1, "a"), run(1, "bb"), run(2, "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_training_reports_rows_that_truncation_leaves_with_nothing_to_learn(tmp_path, capsys):
    """Real BoolQ passages under the project's byte-level tokenizer: most rows exceed 256
    tokens and keep no completion token. train() says so (one warning line) and records the
    counts in training.json."""
    from pathlib import Path

    from steering.data import tokenize_split
    from steering.loading.loader import load_tokenizer

    save_tiny_model(tmp_path / "m", "llama", hidden_size=32, num_layers=2)
    real = Path(__file__).parent / "data" / "real" / "BoolQ"
    summary = train(
        TrainSettings(
            model_name=str(tmp_path / "m"),
            dataset_name="BoolQ",
            data_dir=str(real),
            max_train_samples=12,
            output_dir=str(tmp_path / "ckpt"),
            progress=False,
        )
    )
    task = get_task("BoolQ")
    rows = task.load(data_dir=real)["train"].select(range(12))
    features = tokenize_split(task, rows, load_tokenizer(str(tmp_path / "m")))
    lengths = features["untruncated_length"]
    empty = sum(all(x == -100 for x in labels) for labels in features["labels"])
    data = summary["data"]
    assert data["rows"] == 12 and data["max_length"] == 256
    assert data["truncated"] == sum(n > 256 for n in lengths) and data["max_tokens"] == max(lengths)
    assert data["unsupervised"] == empty > 0 and data["chat_template"] is False
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        f"warning: {100 * empty / 12:.1f}% of BoolQ train rows ({empty} of 12) train nothing: "
        "their prompt fills the max length of 256 tokens, so truncation cuts the whole "
        "completion (as in the official code)"
    ]
    import json

    assert json.loads((tmp_path / "ckpt" / "training.json").read_text())["data"] == data


def test_a_batch_split_into_more_accumulation_steps_trains_the_same_adapter(tmp_path):
    """bs 4 x grad_accum 4 is the protocol's bs 8 x grad_accum 2 in less memory: the same 16
    rows an optimizer step in the same order, the loss averaged over all their tokens, so the
    same adapter (only the summation order differs). What config/paper.yaml's placements of
    the large models rely on (steering/pipeline/placement.py)."""
    save_tiny_model(tmp_path / "m", "llama", hidden_size=32, num_layers=2)
    task = get_task("GSM8K")  # completions of unequal lengths: a per-step mean would differ
    write_prepared(task, task.make_splits(task.synthetic(scale=0.05)), tmp_path / "d", {"k": 1})

    def run(bs, accum):
        out = tmp_path / f"bs{bs}x{accum}"
        summary = train(
            TrainSettings(
                model_name=str(tmp_path / "m"),
                dataset_name="GSM8K",
                data_dir=str(tmp_path / "d"),
                max_train_samples=48,
                epochs=1,
                lr=0.01,
                bs=bs,
                grad_accum=accum,
                output_dir=str(out),
                progress=False,
                device="cpu",
            )
        )
        return load_file(out / "adapter.safetensors"), summary["optimizer_steps"]

    (a, steps_a), (b, steps_b) = run(8, 2), run(4, 4)
    assert steps_a == steps_b == 3
    assert max(a[k].abs().max().item() for k in a) > 1e-3  # it trained
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-5, msg=k)
