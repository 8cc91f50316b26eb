"""Capítulo 01-estatistica: o código que o capítulo ensina e os seguintes reutilizam.

ARQUIVO GERADO por `python ferramentas/exportar.py` a partir das células `# exportar` de
`01-estatistica/notebook.ipynb`. Não edite à mão: mude o notebook e gere de novo.
"""
import math

import torch

from llm_do_zero.oficina import get_data_file


# %% 01-estatistica/notebook.ipynb · célula 8
MACHADO_BOOKS = [
    "casaVelha", "contosFluminenses", "domCasmurro", "esau", "helena", "historiasMeiaNoite", "historiasSemData",
    "iaia", "maoLuva", "memorial-de-aires", "memoriasBras", "paginasRecolhidas", "papeisAvulsos", "quincas",
    "reliquias", "ressurreicao", "variasHistorias",
]


def load_text(name: str = "domCasmurro") -> str:
    """Texto de um livro de Machado de Assis pelo nome curto (ex.: 'domCasmurro'), via cache/espelho/download."""
    if name not in MACHADO_BOOKS:
        raise KeyError(f"Livro {name!r} desconhecido. Opções: {', '.join(MACHADO_BOOKS)}")
    return get_data_file(f"machado/{name}.txt", quiet=True).read_text(encoding="utf-8")


# %% 01-estatistica/notebook.ipynb · célula 28
def perplexity(nll: float | torch.Tensor) -> float:
    """Perplexidade = exp(NLL média), com a NLL em nats (log natural).

    `nll` pode ser um número (a NLL média, por exemplo a perda de entropia cruzada de um modelo) ou um tensor com a
    NLL de cada token, -log P(token | contexto), do qual se tira a média. Um modelo uniforme sobre V símbolos
    tem perplexidade V. Se algum token teve probabilidade 0, a NLL é infinita e a perplexidade também.
    """
    valores = torch.as_tensor(nll, dtype=torch.float64)
    if valores.numel() == 0:
        raise ValueError("perplexity recebeu um tensor vazio: não há tokens para avaliar.")
    if torch.isnan(valores).any():
        raise ValueError("A NLL contém NaN: alguma probabilidade saiu de 0/0 (um contexto nunca visto no "
                         "treino?). Use suavização ou confira o modelo antes de medir a perplexidade.")
    media = valores.mean()
    if media < 0:
        raise ValueError(f"NLL média negativa ({media.item():.4f}): passe -log P (a NLL), não log P.")
    return math.exp(media.item()) if media < 700 else math.inf
