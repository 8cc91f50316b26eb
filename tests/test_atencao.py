"""Testes da MultiHeadAttention exportada pelo capítulo 03 (comparação com o PyTorch e causalidade)."""
import pytest
import torch
import torch.nn.functional as F

from llm_do_zero.atencao import MultiHeadAttention


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
