"""Capítulo 01: carregamento dos livros e a função `perplexity`."""
import math

import pytest
import torch
import torch.nn.functional as F

from llm_do_zero.estatistica import load_text, MACHADO_BOOKS, perplexity


@pytest.mark.parametrize("V", [2, 101, 50257])
def test_perplexidade_do_modelo_uniforme_e_o_tamanho_do_vocabulario(V):
    # Modelo uniforme: P = 1/V para todo token, logo a NLL de cada token é log V.
    nll_por_token = -torch.log(torch.full((1000,), 1.0 / V, dtype=torch.float64))
    assert perplexity(nll_por_token) == pytest.approx(V, rel=1e-9)
    assert perplexity(math.log(V)) == pytest.approx(V, rel=1e-9)


def test_perplexidade_e_exp_da_entropia_cruzada():
    torch.manual_seed(0)
    logits, alvos = torch.randn(64, 10), torch.randint(0, 10, (64,))
    perda = F.cross_entropy(logits, alvos)
    por_token = F.cross_entropy(logits, alvos, reduction="none")
    assert perplexity(perda) == pytest.approx(math.exp(perda.item()), rel=1e-6)
    assert perplexity(por_token) == pytest.approx(math.exp(perda.item()), rel=1e-5)


def test_extremos_e_erros():
    assert perplexity(0.0) == 1.0
    assert perplexity(torch.tensor([0.5, math.inf])) == math.inf
    assert perplexity(5000.0) == math.inf
    with pytest.raises(ValueError, match="NaN"):
        perplexity(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="negativa"):
        perplexity(-1.0)
    with pytest.raises(ValueError, match="vazio"):
        perplexity(torch.tensor([]))


def test_livros_de_machado():
    assert len(MACHADO_BOOKS) == 17 and len(set(MACHADO_BOOKS)) == 17
    texto = load_text("domCasmurro")
    assert len(texto) == 371_506 and texto.startswith("Dom Casmurro")
    with pytest.raises(KeyError, match="desconhecido"):
        load_text("dom casmurro")
