"""The EPIR network: shapes, token merging, ITALS, DTSM, presets, size, precision."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from epir_core import PRESETS, EPIRConfig, build_model
from epir_core.complexity import count_parameters
from epir_core.loss import epir_loss
from epir_core.model.attention import Attention
from epir_core.model.dtsm import gather_tokens, select_tokens
from epir_core.model.explain import input_cells, patch_weights
from epir_core.model.merge import bipartite_soft_matching, merge_wavg
from epir_core.model.tokenization import diagonal_shifts, patchify


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    # One thread: on the shared 2-core machine two contending threads run these small ops many times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def _tokens_per_stage(model, x):
    """(tokens in, tokens out) of every block, in order, from forward hooks."""
    seen = []
    blocks = [*model.ti_blocks, *model.blocks, model.last_block]
    hooks = [b.register_forward_hook(lambda m, inp, out: seen.append((inp[0].shape[1], out[0].shape[1]))) for b in blocks]
    model(x)
    for h in hooks:
        h.remove()
    return seen


def test_shapes_through_every_stage():
    model = build_model().eval()
    x = torch.rand(2, 3, 28, 28)
    assert diagonal_shifts(x, 3).shape == (2, 15, 28, 28)
    assert model.tokenizer(x).shape == (2, 16, 256)
    stages = _tokens_per_stage(model, x)
    assert stages[:6] == [(17, 16), (16, 15), (15, 14), (14, 13), (13, 12), (12, 11)]
    assert stages[6:12] == [(11, 11)] * 6
    assert stages[12] == (4, 4)  # CLS + one DTSM token per head
    logits, feats = model.forward_with_features(x)
    assert logits.shape == (2, 3) and feats.shape == (2, 256)
    assert torch.allclose(model.head(feats), logits)


def test_diagonal_shifts_are_spt_windows():
    x = torch.arange(2 * 6 * 6, dtype=torch.float32).reshape(1, 2, 6, 6)
    out = diagonal_shifts(x, 1)
    lu, ru, lb, rb = out[:, 2:4], out[:, 4:6], out[:, 6:8], out[:, 8:10]
    assert torch.equal(out[:, :2], x)
    # LU shows the map moved right-down by s: out[i, j] = x[i - s, j - s], zero outside.
    assert torch.equal(lu[..., 1:, 1:], x[..., :-1, :-1]) and lu[..., 0, :].abs().sum() == 0
    assert torch.equal(ru[..., 1:, :-1], x[..., :-1, 1:]) and ru[..., :, -1].abs().sum() == 0
    assert torch.equal(lb[..., :-1, 1:], x[..., 1:, :-1]) and lb[..., -1, :].abs().sum() == 0
    assert torch.equal(rb[..., :-1, :-1], x[..., 1:, 1:]) and rb[..., -1, :].abs().sum() == 0


def test_patchify_is_row_major_with_channel_fastest():
    x = torch.rand(1, 3, 4, 4)
    patches = patchify(x, 2)  # 1 x 4 x 12
    for k, (i, j) in enumerate(itertools.product(range(2), range(2))):
        window = x[0, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]  # C x p x p
        assert torch.equal(patches[0, k], window.permute(1, 2, 0).reshape(-1))


def test_merge_with_r_zero_is_identity():
    x, metric = torch.rand(2, 17, 8), torch.rand(2, 17, 5)
    for dense in (False, True):
        merge = bipartite_soft_matching(metric, 0, dense=dense)
        assert merge(x) is x


def _brute_force_merge(x, metric, size, r):
    """ToMe's matching written as loops over samples and tokens."""
    out = []
    for b in range(x.shape[0]):
        m = F.normalize(metric[b], dim=-1)
        a_pos, b_pos = list(range(0, len(m), 2)), list(range(1, len(m), 2))
        best = {}
        for i in a_pos[1:]:  # CLS (position 0) is never a source
            sims = [float(m[i] @ m[j]) for j in b_pos]
            best[i] = (max(sims), b_pos[sims.index(max(sims))])
        sources = sorted(best, key=lambda i: -best[i][0])[:r]
        groups = {j: [j] for j in b_pos}
        for i in sources:
            groups[best[i][1]].append(i)
        rows = [x[b, i] for i in a_pos if i not in sources]
        sizes = [size[b, i] for i in a_pos if i not in sources]
        for j in b_pos:
            s = sum(size[b, k] for k in groups[j])
            rows.append(sum(size[b, k] * x[b, k] for k in groups[j]) / s)
            sizes.append(s)
        out.append((torch.stack(rows), torch.stack(sizes)))
    return torch.stack([o[0] for o in out]), torch.stack([o[1] for o in out])


@pytest.mark.parametrize("n,r", [(17, 1), (12, 3), (9, 4), (6, 5)])
@pytest.mark.parametrize("dense", [False, True])
def test_merged_tokens_are_size_weighted_means(n, r, dense):
    x, metric = torch.randn(3, n, 6), torch.randn(3, n, 5)
    size = torch.randint(1, 4, (3, n, 1)).float()
    merged, merged_size = merge_wavg(bipartite_soft_matching(metric, r, dense=dense), x, size)
    expected, expected_size = _brute_force_merge(x, metric, size, min(r, (n - 1) // 2))
    assert torch.allclose(merged, expected, atol=1e-6)
    assert torch.equal(merged_size, expected_size)
    assert torch.allclose(merged[:, 0], x[:, 0]) and torch.all(merged_size[:, 0] == size[:, 0])  # CLS first, alone


def test_dense_merge_equals_scatter_merge():
    for n, r in [(17, 1), (17, 8), (11, 4), (4, 1)]:
        x, metric = torch.randn(4, n, 16), torch.randn(4, n, 8)
        dense = bipartite_soft_matching(metric, r, dense=True)(x)
        scatter = bipartite_soft_matching(metric, r, dense=False)(x)
        assert torch.allclose(dense, scatter, atol=1e-6)
    model = build_model().eval()
    dense_model = build_model(merge_impl="dense").eval()
    dense_model.load_state_dict(model.state_dict())
    x = torch.rand(5, 3, 28, 28)
    assert torch.allclose(model(x), dense_model(x), atol=1e-5)


@pytest.mark.parametrize("dense", [False, True])
def test_merged_sources_are_the_groups_each_token_averages(dense):
    """ToMe's source tracking: merging the identity gives, per token, the input tokens it stands for."""
    n, r = 17, 5
    metric, ones = torch.randn(3, n, 5), torch.ones(3, n, 1)
    source = bipartite_soft_matching(metric, r, dense=dense)(torch.eye(n).expand(3, -1, -1))
    group_means, sizes = _brute_force_merge(torch.eye(n).expand(3, -1, -1), metric, ones, r)
    assert torch.equal(source.sum(-1, keepdim=True), sizes)
    assert torch.allclose(source / sizes, group_means)


def test_sources_through_the_ti_blocks_partition_the_patches():
    model = build_model().eval()
    x = torch.cat([model.cls_token.expand(2, -1, -1), model.tokenizer(torch.rand(2, 3, 28, 28))], 1) + model.pos_embed
    size, source = torch.ones(2, 17, 1), torch.eye(17).expand(2, -1, -1)
    with torch.no_grad():
        for block in model.ti_blocks:
            x, size, _, source = block(x, size, source)
            assert torch.equal(source.sum(-1, keepdim=True), size)  # a token's size counts its sources
            assert torch.equal(source.sum(1), torch.ones(2, 17))  # every input token is in exactly one
            assert torch.equal(source[:, 0], F.one_hot(torch.tensor([0, 0]), 17).float())  # CLS alone
    assert source.shape == (2, 11, 17)


@pytest.mark.parametrize("preset,merge_impl", [("epir", "scatter"), ("epir", "dense"), ("vit", "scatter")])
def test_explain_gives_forwards_logits_and_weights_on_the_patches_read(preset, merge_impl):
    model = build_model(preset, merge_impl=merge_impl).eval()
    x = torch.rand(5, 3, 28, 28)
    with torch.no_grad():
        expected = model(x)
        _, _, sources = model.encode(x, track_sources=True)
    logits, weights = model.explain(x)
    assert torch.equal(logits, expected)
    assert weights.shape == (5, 4, 4) and torch.all(weights >= 0)
    assert torch.allclose(weights.sum((1, 2)), torch.ones(5))
    # Non-zero exactly on the patches that the last block's tokens stand for.
    read = sources[:, 1:, 1:].amax(dim=1).reshape(5, 4, 4) > 0
    assert torch.equal(weights > 0, read)
    if model.config.dtsm:
        assert torch.all(read.sum((1, 2)) < 16)  # 3 picked tokens cannot cover all 16 patches here


def test_patch_weights_split_each_tokens_attention_over_its_patches():
    attn = torch.zeros(1, 2, 3, 3)
    attn[0, 0, 0] = torch.tensor([0.0, 0.5, 0.5])
    attn[0, 1, 0] = torch.tensor([0.0, 0.9, 0.1])  # heads average to 0.7 and 0.3
    source = torch.zeros(1, 3, 5)  # CLS + 2 x 2 patches
    source[0, 0, 0] = 1
    source[0, 1, [1, 2]] = 1  # token 1 stands for patches (0, 0) and (0, 1)
    source[0, 2, 4] = 1  # token 2 for patch (1, 1)
    weights = patch_weights(attn, source, grid=2)
    assert torch.allclose(weights, torch.tensor([[[0.35, 0.35], [0.0, 0.3]]]))
    cells = input_cells(weights[0])
    assert [(c["row"], c["col"]) for c in cells] == [(0, 0), (0, 1), (1, 1)]  # heaviest first, ties row-major
    assert cells[-1] == {"row": 1, "col": 1, "weight": 0.3, "box": [0.5, 0.5, 1.0, 1.0]}


@pytest.mark.parametrize("temperature", ["scalar", "per_head"])
def test_itals_masks_the_diagonal_for_every_token_count(temperature):
    attn = Attention(EPIRConfig(temperature=temperature), locality=True)
    for n in range(2, 18):
        _, _, maps = attn(torch.randn(2, n, 256))
        assert maps.shape == (2, 3, n, n)
        assert torch.all(maps.diagonal(dim1=-2, dim2=-1) == 0)
        assert torch.allclose(maps.sum(-1), torch.ones(2, 3, n))


def test_itals_is_used_where_configured_and_masks_inside_the_model():
    model = build_model().eval()
    maps = []
    for block in [*model.ti_blocks, *model.blocks, model.last_block]:
        block.register_forward_hook(lambda m, inp, out: maps.append(out[2]))
    model(torch.rand(2, 3, 28, 28))
    diagonals = [m.diagonal(dim1=-2, dim2=-1) for m in maps]
    assert all(d.abs().sum() > 0 for d in diagonals[:6])  # TI blocks: plain MSA by default
    assert all(torch.all(d == 0) for d in diagonals[6:])  # 6 ITALS blocks at 11 tokens, last at 4
    temps = [b.attn.log_scale for b in [*model.blocks, model.last_block]]
    assert all(t.numel() == 1 and t.requires_grad for t in temps)


def test_dtsm_picks_argmax_of_rolled_out_cls_row():
    B, H, N, L = 2, 3, 5, 3
    maps = [torch.rand(B, H, N, N).softmax(-1) for _ in range(L)]
    idx = select_tokens(maps)
    for b, h in itertools.product(range(B), range(H)):
        joint = torch.eye(N, dtype=torch.float64)
        for a in maps:  # later layers multiply on the left
            joint = a[b, h].double() @ joint
        assert idx[b, h] == 1 + int(joint[0, 1:].argmax())
    x = torch.randn(B, N, 7)
    picked = gather_tokens(x, idx)
    assert picked.shape == (B, 1 + H, 7)
    for b, h in itertools.product(range(B), range(H)):
        assert torch.equal(picked[b, 1 + h], x[b, idx[b, h]])
    assert torch.equal(picked[:, 0], x[:, 0])


def test_samples_are_independent_of_their_batch():
    model = build_model().eval()
    x = torch.rand(6, 3, 28, 28)
    together = model(x)
    alone = torch.cat([model(x[i : i + 1]) for i in range(6)])
    assert torch.allclose(together, alone, atol=1e-5)


def _separable_set():
    """6 inputs, 3 classes; class c has a bright channel c."""
    labels = torch.arange(3).repeat_interleave(2)
    x = torch.full((6, 3, 28, 28), 0.2) + 0.05 * torch.rand(6, 3, 28, 28)
    x[torch.arange(6), labels] += 0.6
    return x, labels


@pytest.mark.parametrize("preset", list(PRESETS))
def test_each_preset_trains(preset):
    model = build_model(preset)
    cfg = model.config
    x, labels = _separable_set()
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    losses = []
    for _ in range(8):
        logits, feats = model.forward_with_features(x)
        loss = epir_loss(logits, feats, labels, cfg.contrastive_margin, contrastive_weight=cfg.contrastive_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


def test_presets_differ_by_one_part_each():
    p = PRESETS
    assert (p["vit"].tokenizer, p["vit"].dtsm, p["vit"].extractor_attention, p["vit"].ti_blocks) == ("linear", False, "msa", 0)
    assert p["+dtsm"].dtsm and p["+dtsm"].contrastive_weight == 1.0 and p["vit"].contrastive_weight == 0.0
    assert p["+itals"].extractor_attention == "itals" and p["+spt"].tokenizer == "spt"
    assert p["+dnspt"].tokenizer == "dnspt" and p["epir"] == EPIRConfig()
    for cfg in p.values():  # 13 blocks in every row (Fig. 5)
        assert cfg.ti_blocks + cfg.extractor_blocks + 1 == 13


def test_default_parameter_count_matches_epir_md_arithmetic():
    dnspt = (2 * 735) + (735 * 256 + 256) + 2 * 256
    cls_pos = 256 + 17 * 256
    block = 512 + 256 * 765 + (255 * 256 + 256) + 512 + (256 * 512 + 512) + (512 * 256 + 256)
    temperatures = 7  # one per ITALS block: 6 extractor blocks + the last
    head = 512 + 256 * 3 + 3
    expected = dnspt + cls_pos + 13 * block + temperatures + head
    assert expected == 7_025_352
    assert count_parameters(build_model()) == expected
    assert count_parameters(build_model(num_classes=5)) == 7_025_866
    assert count_parameters(build_model(temperature="per_head")) == expected + 14


def test_default_macs_match_the_paper():
    pytest.importorskip("ptflops", reason="ptflops is a dev extra")
    from epir_core.complexity import count_macs

    model = build_model()
    assert count_macs(model) == 84_026_783
    assert count_macs(build_model(merge_impl="dense")) == 84_026_783  # export path costs the same
    assert model.training  # counting works on a copy


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_forward_is_finite(dtype):
    model = build_model(temperature="per_head", ti_attention="itals").eval().to(dtype)
    try:
        logits = model(torch.rand(2, 3, 28, 28, dtype=dtype))
    except RuntimeError as exc:  # some CPU builds lack half kernels
        pytest.skip(f"{dtype} not supported on this CPU build: {exc}")
    assert logits.dtype == dtype and torch.isfinite(logits).all()


def test_options_build_and_run():
    model = build_model(
        merge_mode="pair_mean", prop_attn=True, ti_attention="itals", center_input=True, drop_path=0.1, dropout=0.1
    )
    loss = model(torch.rand(3, 3, 28, 28)).sum()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_config_round_trip_and_validation():
    cfg = PRESETS["+spt"]
    assert EPIRConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown EPIR config fields"):
        EPIRConfig.from_dict({**cfg.to_dict(), "depth": 3})
    with pytest.raises(ValueError, match="tokenizer"):
        EPIRConfig(tokenizer="conv")
    with pytest.raises(ValueError, match="multiple"):
        EPIRConfig(image_size=30)
    with pytest.raises(ValueError, match="extractor_blocks"):
        EPIRConfig(extractor_blocks=0)
    with pytest.raises(ValueError, match="unknown preset"):
        build_model("epir-large")
    assert EPIRConfig(merge_r=2).token_counts() == (17, 15, 13, 11, 9, 7, 5)
