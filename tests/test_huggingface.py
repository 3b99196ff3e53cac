"""Real Hugging Face models, built from configs (no download): dict batches from a
DataLoader, the loss from ``outputs.loss``, accuracy from ``outputs.logits``, and a
landscape over the LoRA adapters of a GPT-2 only."""

import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from landscape_widgets import compute_landscape, plane, random_directions
from landscape_widgets.core.params import flatten_params, model_at, param_layout

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
transformers.logging.set_verbosity_error()


class Sentences(Dataset):
    """Random token sequences with padding and a label per sequence (or per token)."""

    def __init__(self, n=36, length=12, vocab=60, classes=3, seed=0, lm=False):
        gen = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, vocab, (n, length), generator=gen)
        self.mask = torch.ones(n, length, dtype=torch.long)
        for i in range(n):
            self.mask[i, length - i % 4 :] = 0  # some padding
        self.labels = self.ids.clone() if lm else torch.randint(0, classes, (n,), generator=gen)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i], "labels": self.labels[i]}


def bert():
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
        max_position_embeddings=16, num_labels=3, hidden_dropout_prob=0.1,
    )
    return transformers.BertForSequenceClassification(config)


def reference(model, loader, params, directions, coeffs):
    """Independent perturb-and-forward: a copy of the model at each point, the HF loss per
    batch, weighted by batch size; accuracy from the logits."""
    layout = param_layout(model, params)
    theta = flatten_params(model, layout)
    loss, acc = [], []
    for c in coeffs:
        net = model_at(model, theta + sum(float(ci) * d for ci, d in zip(c, directions)), layout).eval()
        total = correct = n = 0.0
        with torch.no_grad():
            for batch in loader:
                out = net(**batch)
                total += float(out.loss) * len(batch["labels"])
                correct += float((out.logits.argmax(-1) == batch["labels"]).sum())
                n += len(batch["labels"])
        loss.append(total / n)
        acc.append(correct / n)
    return np.array(loss), np.array(acc)


@pytest.mark.slow
def test_bert_from_dict_batches_loop_equals_batched_equals_reference():
    model = bert()
    loader = DataLoader(Sentences(), batch_size=10, shuffle=True)  # shuffled: frozen order
    grid = plane((-0.5, 0.5), num=5)
    dirs = random_directions(model, 2, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no vmap fallback
        loop = compute_landscape(model, None, loader, grid, dirs, strategy="loop")
        batched = compute_landscape(model, None, loader, grid, dirs, strategy="batched")
    assert model.training  # the caller's model keeps its mode
    assert batched.attrs["strategy"] == "batched" and "vmap_fallback" not in batched.attrs
    assert set(loop.data_vars) == {"loss", "accuracy", "done"}
    assert loop.attrs["n_samples"] == 36 and loop.attrs["model"] == "BertForSequenceClassification"
    np.testing.assert_allclose(loop["loss"].values, batched["loss"].values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loop["accuracy"].values, batched["accuracy"].values, atol=1e-12)
    picks = [(0, 0), (2, 2), (4, 1), (1, 3)]
    coeffs = [(float(grid.axes[0].values[i]), float(grid.axes[1].values[j])) for i, j in picks]
    ref_loss, ref_acc = reference(model, loader, None, dirs, coeffs)
    got = np.array([loop["loss"].values[i, j] for i, j in picks])
    np.testing.assert_allclose(got, ref_loss, rtol=1e-5)
    np.testing.assert_allclose([loop["accuracy"].values[i, j] for i, j in picks], ref_acc, atol=1e-12)
    assert np.ptp(loop["loss"].values) > 1e-3  # the directions do move the loss


def gpt2_with_lora():
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=60, n_positions=16, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=0, eos_token_id=0)
    base = transformers.GPT2LMHeadModel(config)
    lora = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True,
                           init_lora_weights=False)  # random B: the adapters are not a no-op
    return peft.get_peft_model(base, lora)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["loop", "batched"])
def test_gpt2_lora_landscape_moves_only_the_adapters(strategy):
    model = gpt2_with_lora().eval()
    base_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    lora_before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert base_before and lora_before and all("lora_" in n for n in lora_before)
    forwards = []

    def base_unchanged(module, args, kwargs):
        # runs in the evaluator's copy of the model, before every forward (every point)
        for name, p in module.named_parameters():
            if name in base_before:
                assert torch.equal(p, base_before[name]), f"{name} moved"
        forwards.append(1)

    model.register_forward_pre_hook(base_unchanged, with_kwargs=True)
    loader = DataLoader(Sentences(n=12, lm=True), batch_size=6)
    grid = plane((-1, 1), num=3)
    ds = compute_landscape(model, None, loader, grid, params="trainable", normalization="layer",
                           strategy=strategy)
    # the loop: one forward per point and batch; batched: one vmapped forward per batch and chunk
    assert len(forwards) >= (grid.size * 2 if strategy == "loop" else 2)
    assert ds.attrs["strategy"] == strategy and "vmap_fallback" not in ds.attrs
    assert ds.attrs["params"] == "trainable"
    assert ds.attrs["n_params"] == sum(p.numel() for p in lora_before.values())
    assert ds.attrs["n_params_fixed"] == sum(p.numel() for p in base_before.values())
    assert "accuracy" not in ds  # a language model: loss only
    assert bool(ds["done"].all()) and np.ptp(ds["loss"].values) > 1e-4
    for name, p in model.named_parameters():  # the caller's model is untouched
        assert torch.equal(p, (base_before | lora_before)[name])
    # the centre is the model's own loss
    with torch.no_grad():
        own = np.mean([float(model(**b).loss) for b in loader])
    assert ds["loss"].values[1, 1] == pytest.approx(own, rel=1e-5)
    # a point moves the adapters only: the same value as loading the adapters by hand
    layout = param_layout(model, "trainable")
    dirs = random_directions(model, 2, seed=0, normalization="layer", params="trainable")
    net = model_at(model, flatten_params(model, layout) + dirs[0] - dirs[1], layout)
    with torch.no_grad():
        by_hand = np.mean([float(net(**b).loss) for b in loader])
    assert ds["loss"].values[2, 0] == pytest.approx(by_hand, rel=1e-5)
