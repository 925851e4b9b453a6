"""Captioner: every encoder backbone, attention on/off, greedy and beam search, gradients."""

import pytest
import torch

from mri.data.vocab import BOS_ID, EOS_ID, PAD_ID
from mri.models.backbones import list_backbones
from mri.models.captioner import Captioner, draw

V = 20


def tiny(attention: bool = False, encoder: str = "plain_cnn", seed: int = 0) -> Captioner:
    torch.manual_seed(seed)
    return Captioner(V, encoder=encoder, embed_dim=8, hidden_dim=16, attention=attention, attention_dim=8).eval()


def captions(batch: int, length: int) -> torch.Tensor:
    ids = torch.randint(4, V, (batch, length))
    ids[:, 0], ids[:, -1] = BOS_ID, EOS_ID
    return ids  # (B, L)


@pytest.mark.parametrize("encoder", list_backbones())
def test_every_encoder_forward(encoder):
    net = tiny(attention=True, encoder=encoder)
    with torch.no_grad():
        logits = net(torch.randn(2, 3, 32, 32), captions(2, 5))
    assert logits.shape == (2, 4, V) and torch.isfinite(logits).all()


@pytest.mark.parametrize("attention", [False, True])
def test_forward_and_gradients(attention):
    net = tiny(attention).train()
    images, ids = torch.randn(3, 3, 32, 32), captions(3, 6)
    logits = net(images, ids)
    assert logits.shape == (3, 5, V)
    torch.nn.functional.cross_entropy(logits.reshape(-1, V), ids[:, 1:].reshape(-1)).backward()
    grads = {name: p.grad for name, p in net.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["encoder.backbone.trunk.block0.0.weight"].abs().sum() > 0  # fine-tuned end to end
    gate = "decoder.attention.gate.weight"
    assert (grads[gate].abs().sum() > 0) if attention else gate not in grads


@pytest.mark.parametrize("attention", [False, True])
def test_captions_share_their_image_encoding(attention):
    net = tiny(attention)
    images, ids = torch.randn(2, 3, 32, 32), captions(5, 6)
    image_of = torch.tensor([0, 0, 0, 1, 1])  # three captions of image 0, two of image 1
    with torch.no_grad():
        shared = net(images, ids, image_of)  # the encoder runs on 2 images
        repeated = net(images[image_of], ids)  # the encoder runs on 5 copies
    assert shared.shape == (5, 5, V) and torch.allclose(shared, repeated, atol=1e-5)


@pytest.mark.parametrize("attention", [False, True])
def test_teacher_forcing_scores_what_decoding_steps_score(attention):
    net = tiny(attention)
    images, ids = torch.randn(3, 3, 32, 32), captions(3, 6)
    with torch.no_grad():
        forced = net(images, ids)  # (3, 5, V), one fused LSTM call without attention
        memory, state = net.start(images)
        stepped = net.decoder.stepped(ids[:, :-1], state, memory)  # the steps greedy and beam search run
    assert forced.shape == (3, 5, V) and torch.allclose(forced, stepped, atol=1e-5)


def test_checkpoint_of_the_lstm_cell_decoder_loads():
    net = tiny()
    old = {k.replace("_l0", ""): v for k, v in net.state_dict().items()}  # nn.LSTMCell names, before the fused LSTM
    assert "decoder.lstm.weight_ih" in old
    restored = tiny(seed=1)
    restored.load_state_dict(old)  # strict
    images, ids = torch.randn(2, 3, 32, 32), captions(2, 6)
    with torch.no_grad():
        assert torch.equal(restored(images, ids), net(images, ids))


def test_frozen_encoder_gets_no_gradient():
    net = Captioner(V, encoder="plain_cnn", trainable_encoder=False, embed_dim=8, hidden_dim=16)
    assert not any(p.requires_grad for p in net.encoder.backbone.parameters())
    assert all(p.requires_grad for p in net.decoder.parameters())


@pytest.mark.parametrize("attention", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_beam_one_equals_greedy(attention, seed):
    net = tiny(attention, seed=seed)
    images = torch.randn(4, 3, 32, 32)
    assert torch.equal(net.beam_search(images, beam_size=1, max_len=12), net.greedy(images, max_len=12))


@pytest.mark.parametrize("attention", [False, True])
def test_batched_beam_equals_per_image_beam(attention):
    net = tiny(attention)
    net.decoder.head.bias.data[EOS_ID] = 2.0  # some beams end, some do not
    images = torch.randn(5, 3, 32, 32)
    batched = net.beam_search(images, beam_size=3, max_len=10)
    for i in range(len(images)):
        alone = net.beam_search(images[i:i + 1], beam_size=3, max_len=10)[0]
        assert torch.equal(batched[i, :len(alone)], alone)
        assert (batched[i, len(alone):] == PAD_ID).all()


def test_beam_without_eos_returns_max_len_best_partial_beam():
    net = tiny(attention=True)
    net.decoder.head.bias.data[EOS_ID] = -1e4  # never ends
    out = net.beam_search(torch.randn(3, 3, 32, 32), beam_size=4, max_len=7)
    assert out.shape == (3, 7)
    assert not (out == EOS_ID).any() and not (out == PAD_ID).any() and not (out == BOS_ID).any()


def test_beam_search_finds_what_greedy_misses(monkeypatch):
    """A scripted decoder: greedy writes 4 6 (p 0.6 * 0.5) then ends; 5 (p 0.4) ends at once, more likely."""
    table = torch.full((V, V), 1e-9)
    table[BOS_ID, 4], table[BOS_ID, 5] = 0.6, 0.4
    table[4, 6], table[4, 7], table[4, EOS_ID] = 0.5, 0.4, 0.1
    table[5:, EOS_ID] = 1.0
    net = tiny()
    monkeypatch.setattr(net, "next_log_probs", lambda tokens, state, memory: (table[tokens].log(), state))
    images = torch.randn(2, 3, 32, 32)
    assert net.greedy(images, max_len=5)[0].tolist() == [4, 6, EOS_ID]
    assert net.beam_search(images, beam_size=2, max_len=5).tolist() == [[5, EOS_ID]] * 2


def test_eval_decoding_stops_once_every_caption_ended():
    net = tiny()
    net.decoder.head.bias.data[EOS_ID] = 1e4  # ends at once
    images = torch.randn(2, 3, 32, 32)
    assert net.greedy(images, max_len=9).tolist() == [[EOS_ID]] * 2
    assert net.beam_search(images, beam_size=3, max_len=9).tolist() == [[EOS_ID]] * 2


def test_restrict_output_decodes_only_known_words():
    net = tiny(attention=True)
    net.restrict_output(7)  # a vocabulary smaller than the output layer
    images = torch.randn(4, 3, 32, 32)
    for ids in (net.greedy(images, max_len=8), net.beam_search(images, beam_size=3, max_len=8)):
        assert (ids < 7).all() and not (ids == BOS_ID).any()


def test_draw_follows_the_probabilities_and_never_draws_an_impossible_word():
    torch.manual_seed(0)
    probs = torch.tensor([[0.0, 0.2, 0.8, 0.0], [0.5, 0.0, 0.0, 0.5], [0.0, 0.0, 0.0, 1.0]])
    drawn = torch.stack([draw(probs.log()) for _ in range(20000)])  # (20000, 3)
    frequencies = torch.stack([(drawn == k).float().mean(0) for k in range(4)], dim=1)  # (3, 4)
    torch.testing.assert_close(frequencies, probs, atol=0.015, rtol=0)
    assert not (probs.gather(1, drawn.T) == 0).any()


@pytest.mark.parametrize("attention", [False, True])
def test_sampled_captions_carry_their_teacher_forced_log_probability(attention):
    net = tiny(attention)
    net.restrict_output(12)
    images = torch.randn(2, 3, 32, 32)
    ids, log_prob = net.sample(images, copies=3, max_len=7)  # (6, T), (6,)
    assert ids.shape[0] == 6 and ids.shape[1] <= 7 and log_prob.requires_grad
    assert ((ids < 12) & (ids != BOS_ID)).all()
    words = torch.cat([torch.full((6, 1), BOS_ID), ids], dim=1)
    with torch.no_grad():
        logits = net(images, words, torch.arange(2).repeat_interleave(3))  # (6, T, V)
    logp = logits.masked_fill(net.banned, float("-inf")).log_softmax(-1).gather(2, ids[:, :, None]).squeeze(2)
    ended_before = torch.cumsum(ids == EOS_ID, 1) - (ids == EOS_ID).long() > 0  # (6, T) positions after the EOS
    torch.testing.assert_close(log_prob.detach(), logp.masked_fill(ended_before, 0.0).sum(1), atol=1e-5, rtol=1e-5)
    assert (ids[ended_before] == PAD_ID).all()
    log_prob.sum().backward()
    assert net.decoder.head.weight.grad.abs().sum() > 0
