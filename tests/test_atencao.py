"""Testes da MultiHeadAttention exportada pelo capítulo 03 (comparação com o PyTorch e causalidade)."""
import pytest
import torch
import torch.nn.functional as F

from llm_do_zero.atencao import MultiHeadAttention, attention_weights, copy_task_batch


def referencia_sdpa(mha: MultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """As mesmas projeções de `mha`, com o núcleo da atenção feito por F.scaled_dot_product_attention."""
    b, t, _ = x.shape

    def dividir(proj: torch.Tensor) -> torch.Tensor:
        return proj.view(b, t, mha.num_heads, mha.head_dim).transpose(1, 2)

    q, k, v = dividir(mha.W_query(x)), dividir(mha.W_key(x)), dividir(mha.W_value(x))
    contexto = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return mha.out_proj(contexto.transpose(1, 2).reshape(b, t, mha.d_out))


@pytest.mark.parametrize("num_heads", [1, 2, 4, 8])
@pytest.mark.parametrize("qkv_bias", [False, True])
def test_igual_a_scaled_dot_product_attention(num_heads, qkv_bias):
    torch.manual_seed(num_heads)
    mha = MultiHeadAttention(d_in=24, d_out=32, context_length=16, dropout=0.0, num_heads=num_heads,
                             qkv_bias=qkv_bias).eval()
    x = torch.randn(3, 13, 24)
    with torch.no_grad():
        nossa, referencia = mha(x), referencia_sdpa(mha, x)
    assert nossa.shape == (3, 13, 32)
    assert (nossa - referencia).abs().max().item() <= 1e-5


@pytest.mark.parametrize("t", [0, 3, 9])
def test_causalidade_por_perturbacao(t):
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_in=16, d_out=16, context_length=12, dropout=0.0, num_heads=4).eval()
    x = torch.randn(2, 12, 16)
    perturbado = x.clone()
    perturbado[:, t + 1:] = torch.randn_like(perturbado[:, t + 1:])
    with torch.no_grad():
        antes, depois = mha(x), mha(perturbado)
    assert (antes[:, :t + 1] - depois[:, :t + 1]).abs().max().item() <= 1e-6
    if t + 1 < x.shape[1]:
        assert (antes[:, t + 1:] - depois[:, t + 1:]).abs().max().item() > 1e-3


def test_primeira_posicao_so_ve_a_si_mesma():
    torch.manual_seed(1)
    mha = MultiHeadAttention(d_in=8, d_out=8, context_length=6, dropout=0.0, num_heads=2).eval()
    x = torch.randn(1, 6, 8)
    with torch.no_grad():
        esperado = mha.out_proj(mha.W_value(x[:, :1]))   # peso 1 em si mesma
        assert torch.allclose(mha(x)[:, :1], esperado, atol=1e-6)


def test_mascara_nao_vai_para_o_state_dict():
    mha = MultiHeadAttention(d_in=8, d_out=8, context_length=6, dropout=0.1, num_heads=2, qkv_bias=True)
    chaves = set(mha.state_dict())
    assert chaves == {"W_query.weight", "W_query.bias", "W_key.weight", "W_key.bias", "W_value.weight",
                      "W_value.bias", "out_proj.weight", "out_proj.bias"}
    assert "mask" in dict(mha.named_buffers())


def test_contagem_de_parametros_gpt2():
    mha = MultiHeadAttention(d_in=768, d_out=768, context_length=1024, dropout=0.0, num_heads=12)
    assert mha.head_dim == 64
    assert sum(p.numel() for p in mha.parameters()) == 4 * 768 * 768 + 768


def test_dropout_so_em_treino():
    torch.manual_seed(2)
    mha = MultiHeadAttention(d_in=8, d_out=8, context_length=6, dropout=0.5, num_heads=2)
    x = torch.randn(2, 6, 8)
    mha.eval()
    with torch.no_grad():
        assert torch.equal(mha(x), mha(x))
        mha.train()
        assert not torch.equal(mha(x), mha(x))


def test_sequencas_mais_curtas_que_o_contexto():
    mha = MultiHeadAttention(d_in=8, d_out=8, context_length=32, dropout=0.0, num_heads=2)
    for t in (1, 5, 32):
        assert mha(torch.randn(2, t, 8)).shape == (2, t, 8)


def test_erros_em_portugues():
    with pytest.raises(ValueError, match="divisível por num_heads"):
        MultiHeadAttention(d_in=8, d_out=6, context_length=4, dropout=0.0, num_heads=4)
    mha = MultiHeadAttention(d_in=8, d_out=8, context_length=4, dropout=0.0, num_heads=2)
    with pytest.raises(ValueError, match="context_length=4"):
        mha(torch.randn(1, 5, 8))


def _por_cabeca(mha: MultiHeadAttention, proj: torch.Tensor) -> torch.Tensor:
    b, t, _ = proj.shape
    return proj.view(b, t, mha.num_heads, mha.head_dim).transpose(1, 2)


@pytest.mark.parametrize("num_heads", [1, 2, 4])
def test_attention_weights_reconstroi_a_saida_da_mha(num_heads):
    """Pesos @ valores, juntados e passados por out_proj, têm de dar exatamente o forward da classe."""
    torch.manual_seed(10 + num_heads)
    mha = MultiHeadAttention(d_in=12, d_out=16, context_length=10, dropout=0.0, num_heads=num_heads).eval()
    x = torch.randn(2, 7, 12)
    with torch.no_grad():
        pesos = attention_weights(mha, x)
        contexto = pesos @ _por_cabeca(mha, mha.W_value(x))
        reconstruida = mha.out_proj(contexto.transpose(1, 2).reshape(2, 7, 16))
        assert pesos.shape == (2, num_heads, 7, 7)
        assert torch.allclose(reconstruida, mha(x), atol=1e-6)


@pytest.mark.parametrize("causal", [True, False])
def test_attention_weights_igual_a_sdpa(causal):
    """Com e sem máscara, pesos @ valores batem com F.scaled_dot_product_attention (is_causal igual)."""
    torch.manual_seed(3)
    mha = MultiHeadAttention(d_in=8, d_out=12, context_length=9, dropout=0.0, num_heads=3).eval()
    x = torch.randn(2, 9, 8)
    with torch.no_grad():
        q, k, v = (_por_cabeca(mha, proj(x)) for proj in (mha.W_query, mha.W_key, mha.W_value))
        referencia = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        nossa = attention_weights(mha, x, causal=causal) @ v
    assert (nossa - referencia).abs().max().item() <= 1e-5


def test_attention_weights_causal_e_o_bidirecional_cortado():
    """Linhas somam 1; a versão causal é zero acima da diagonal e é a bidirecional sem o futuro, renormalizada."""
    torch.manual_seed(4)
    mha = MultiHeadAttention(d_in=6, d_out=8, context_length=12, dropout=0.0, num_heads=2)
    x = torch.randn(3, 8, 6)
    with torch.no_grad():
        causal, bidirecional = attention_weights(mha, x), attention_weights(mha, x, causal=False)
    futuro = torch.triu(torch.ones(8, 8, dtype=torch.bool), diagonal=1)
    assert torch.allclose(causal.sum(-1), torch.ones(3, 2, 8))
    assert torch.allclose(bidirecional.sum(-1), torch.ones(3, 2, 8))
    assert torch.equal(causal[..., futuro], torch.zeros_like(causal[..., futuro]))
    assert (bidirecional[..., futuro] > 0).all()
    cortado = bidirecional.masked_fill(futuro, 0.0)
    assert torch.allclose(causal, cortado / cortado.sum(-1, keepdim=True), atol=1e-6)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_copy_task_batch_contra_um_laco(k):
    entradas, alvos = copy_task_batch(5, 8, 11, k, generator=torch.Generator().manual_seed(k))
    assert entradas.shape == alvos.shape == (5, 8)
    assert entradas.min() >= 0 and entradas.max() < 11
    for i in range(5):
        for t in range(8):
            esperado = entradas[i, t - k].item() if t >= k else -100
            assert alvos[i, t].item() == esperado


def test_copy_task_batch_reprodutivel_e_ignorado_pela_entropia_cruzada():
    a = copy_task_batch(4, 6, 9, 2, generator=torch.Generator().manual_seed(0))
    b = copy_task_batch(4, 6, 9, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    entradas, alvos = a
    logits = torch.randn(4, 6, 9)
    perda = F.cross_entropy(logits.flatten(0, 1), alvos.flatten())
    so_com_alvo = F.cross_entropy(logits[:, 2:].flatten(0, 1), entradas[:, :-2].flatten())
    assert torch.allclose(perda, so_com_alvo)


@pytest.mark.parametrize("k", [0, 6, -1])
def test_copy_task_batch_k_invalido(k):
    with pytest.raises(ValueError, match="precisa estar entre 1"):
        copy_task_batch(2, 6, 9, k)
