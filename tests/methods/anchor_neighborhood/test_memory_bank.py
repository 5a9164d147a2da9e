"""The memory bank, anchor mining and the AND loss against hand computation."""

import math

import numpy as np
import pytest
import torch

from deepclust_cli.methods.anchor_neighborhood.memory_bank import MemoryBank, neighborhood_loss, select_anchors
from deepclust_cli.ops.metrics import knn_acc, knn_predict


def bank_of(rows: list[list[float]], temperature: float = 1.0, momentum: float = 0.5) -> MemoryBank:
    bank = MemoryBank(len(rows), len(rows[0]), momentum=momentum, temperature=temperature)
    bank.features = torch.tensor(rows, dtype=torch.float32)
    return bank


def test_initial_bank_is_uniform_in_the_reference_bound_and_seeded():
    first = MemoryBank(500, 12, generator=torch.Generator().manual_seed(3)).features
    again = MemoryBank(500, 12, generator=torch.Generator().manual_seed(3)).features
    bound = 1 / math.sqrt(12 / 3)
    assert torch.equal(first, again)
    assert first.abs().max() <= bound and first.abs().max() > 0.95 * bound
    assert abs(float(first.mean())) < 0.02


def test_update_blends_by_momentum_then_normalizes_only_the_given_rows():
    bank = bank_of([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], momentum=0.5)
    bank.update(torch.tensor([0, 2]), torch.tensor([[0.0, 1.0], [0.6, 0.8]]))
    half = 1 / math.sqrt(2)
    assert torch.allclose(bank.features[0], torch.tensor([half, half]))  # normalize(0.5·(1,0) + 0.5·(0,1))
    assert torch.equal(bank.features[1], torch.tensor([0.0, 1.0]))
    assert torch.allclose(bank.features[2], torch.tensor([0.6, 0.8]))


def test_logits_are_similarities_over_the_temperature():
    bank = bank_of([[1.0, 0.0], [0.0, 1.0]], temperature=0.1)
    logits = bank.logits(torch.tensor([[0.6, 0.8]]))
    assert torch.allclose(logits, torch.tensor([[6.0, 8.0]]))


HAND_BANK = [[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]]


def test_entropy_and_nearest_match_hand_computation():
    temperature = 0.5
    bank = bank_of(HAND_BANK, temperature=temperature)
    similarities = np.array(HAND_BANK) @ np.array(HAND_BANK).T
    p = np.exp(similarities / temperature)
    p /= p.sum(axis=1, keepdims=True)
    expected_entropy = -(p * np.log(p)).sum(axis=1)
    entropy, nearest = bank.entropy_and_nearest()
    np.testing.assert_allclose(entropy.numpy(), expected_entropy, rtol=1e-5)
    # Row 0's closest other row is 1 (0.8), row 1's is 0 (0.8 beats 0.6), row 2's is 1, row 3's is 2.
    assert nearest.tolist() == [[1], [0], [1], [2]]


def test_mining_a_row_at_a_time_equals_one_block():
    bank = MemoryBank(300, 8, generator=torch.Generator().manual_seed(0))
    bank.features = torch.nn.functional.normalize(bank.features, dim=1)
    whole = bank.entropy_and_nearest(chunk_bytes=1 << 30)
    rows = bank.entropy_and_nearest(chunk_bytes=1)  # one row per block
    assert torch.allclose(whole[0], rows[0]) and torch.equal(whole[1], rows[1])
    first = bank.entropy_and_nearest(chunk_bytes=1 << 12, rows=70)  # the benchmark's partial mining
    assert torch.allclose(first[0], whole[0][:70]) and torch.equal(first[1], whole[1][:70])


def test_anchors_are_the_lowest_entropy_share_with_ties_by_index():
    entropy = torch.tensor([0.5, 0.1, 0.9, 0.1, 0.3])
    assert select_anchors(entropy, 0.4).tolist() == [False, True, False, True, False]
    assert select_anchors(entropy, 0.6).tolist() == [False, True, False, True, True]
    assert not select_anchors(entropy, 0.0).any()
    assert select_anchors(entropy, 1.0).all()


def test_loss_for_an_anchor_and_a_non_anchor_against_hand_computation():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.5, 0.5, 3.0, 0.0]], requires_grad=True)
    indices = torch.tensor([0, 2])  # the two samples' own columns
    neighbors = torch.tensor([1, 2])  # sample 0 (an anchor) is paired with 1; sample 1 is no anchor
    anchor = torch.tensor([True, False])
    p = torch.softmax(logits.detach(), dim=1)
    expected = (-torch.log(p[0, 0] + p[0, 1]) - torch.log(p[1, 2])) / 2
    loss = neighborhood_loss(logits, indices, neighbors, anchor)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_an_anchor_paired_with_itself_is_plain_instance_discrimination():
    logits = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    indices = torch.tensor([4, 0, 2])
    plain = neighborhood_loss(logits, indices, indices, torch.zeros(3, dtype=torch.bool))
    expected = -torch.log_softmax(logits, dim=1)[torch.arange(3), indices].mean()
    assert plain.item() == pytest.approx(expected.item(), rel=1e-6)


def at(degrees: float) -> list[float]:
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


# Six unit vectors with labels, and two queries: the reference's kNN rule (lib/protocols.py) by hand.
KNN_BANK = [at(0), at(30), at(60), at(90), at(180), at(270)]
KNN_LABELS = [0, 1, 1, 0, 2, 2]
QUERIES = [at(5), at(200)]


def test_the_and_knn_rule_on_a_hand_built_bank():
    similarities = np.array(QUERIES) @ np.array(KNN_BANK).T
    # Query at 5°: its k=3 nearest are 0° (class 0, cos 5°), 30° and 60° (class 1, cos 25° and cos 55°).
    # Query at 200°: 180° (class 2, cos 20°), 270° (class 2, cos 70°), 90° (class 0, cos 110°).
    nearest = [[0, 1, 2], [4, 5, 3]]
    for temperature, expected in ((0.1, [0, 2]), (1.0, [1, 2])):
        votes = np.zeros((2, 3))
        for query, rows in enumerate(nearest):
            for row in rows:
                votes[query, KNN_LABELS[row]] += math.exp(similarities[query, row] / temperature)
        assert votes.argmax(axis=1).tolist() == expected
        predicted = knn_predict(KNN_BANK, KNN_LABELS, QUERIES, k=3, temperature=temperature)
        assert predicted.tolist() == expected
    # At T = 0.1 the single close class-0 vector outvotes two class-1 ones: e^9.96 > e^9.06 + e^5.74.
    assert knn_acc(KNN_BANK, KNN_LABELS, QUERIES, [0, 1], k=3, temperature=0.1) == 0.5
    assert knn_acc(KNN_BANK, KNN_LABELS, QUERIES, [0, 1], k=3, temperature=1.0) == 0.0
    # A stale bank votes otherwise than the recomputed features: sample 0 has since moved to 240°.
    recomputed = [at(240), *KNN_BANK[1:]]
    assert knn_predict(recomputed, KNN_LABELS, QUERIES, k=3, temperature=0.1).tolist() == [1, 2]


def test_an_anchor_neighborhood_holds_its_k_most_similar_other_samples():
    bank = bank_of(HAND_BANK, temperature=0.5)
    _, nearest = bank.entropy_and_nearest(k=2)
    # Row 0 → 1 (0.8), 2 (0) before 3 (-1); row 1 → 0 (0.8), 2 (0.6); row 3 → 2 (0), 1 (-0.8);
    # row 2 → 1 (0.6), then 0 and 3 tie at 0.
    assert nearest[0].tolist() == [1, 2] and nearest[1].tolist() == [0, 2] and nearest[3].tolist() == [2, 1]
    assert nearest[2, 0] == 1 and nearest[2, 1] in (0, 3)
    assert (nearest != torch.arange(4).unsqueeze(1)).all()
    with pytest.raises(ValueError, match="neighborhood of 4 other samples"):
        bank.entropy_and_nearest(k=4)


def test_loss_with_a_neighborhood_of_two_against_hand_computation():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.5, 0.5, 3.0, 0.0]], requires_grad=True)
    indices = torch.tensor([0, 2])
    neighbors = torch.tensor([[1, 3], [2, 2]])  # sample 0, an anchor, with neighbors 1 and 3; sample 1 no anchor
    anchor = torch.tensor([True, False])
    p = torch.softmax(logits.detach(), dim=1)
    expected = (-torch.log(p[0, 0] + p[0, 1] + p[0, 3]) - torch.log(p[1, 2])) / 2
    loss = neighborhood_loss(logits, indices, neighbors, anchor)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # One neighbor fewer is a different loss: every neighbor counts.
    assert neighborhood_loss(logits, indices, neighbors[:, :1], anchor).item() != pytest.approx(expected.item(), rel=1e-3)
