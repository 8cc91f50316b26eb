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


# %% 01-estatistica/notebook.ipynb · célula 43
def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Intervalo de Wilson (95% com z = 1,96) para uma proporção de `k` sucessos em `n` tentativas."""
    if n <= 0:
        raise ValueError("n precisa ser positivo: não há proporção medida em zero exemplos.")
    if not 0 <= k <= n:
        raise ValueError(f"k={k} precisa estar entre 0 e n={n}.")
    p = k / n
    centro = (p + z * z / (2 * n)) / (1 + z * z / n)
    meia_largura = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centro - meia_largura), min(1.0, centro + meia_largura)


# %% 01-estatistica/notebook.ipynb · célula 70
# O que a execução deste capítulo tem de reproduzir (capítulo 00, seção 8): contagens exatas, a rede com folga.
ESTATISTICA_CHECKS = {
    "capitulo": "01-estatistica",
    "tolerancias": {"nll_teste_bigrama_rede": 0.02, "diferenca_rede_contagens": 0.02, "p_u_dado_q.rede": 0.01,
                    "nll_teste_trigrama_rede": 0.02},
    "conclusoes": {
        "mais contexto, menor perplexidade": "perplexidade_uniforme > perplexidade_unigrama > perplexidade_bigrama"
                                             " > perplexidade_trigrama",
        "a rede aprende a mesma tabela de bigramas": "abs(nll_teste_bigrama_rede - nll_teste_bigrama_contagens) < 0.02",
    },
}
