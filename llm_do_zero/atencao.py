"""Capítulo 03-atencao: o código que o capítulo ensina e os seguintes reutilizam.

ARQUIVO GERADO por `python ferramentas/exportar.py` a partir das células `# exportar` de
`03-atencao/notebook.ipynb`. Não edite à mão: mude o notebook e gere de novo.
"""
import torch
from torch import nn


# %% 03-atencao/notebook.ipynb · célula 71
class MultiHeadAttention(nn.Module):
    """Atenção causal com várias cabeças, calculadas juntas e separadas com view/transpose.

    Entrada (lote, tokens, d_in) -> saída (lote, tokens, d_out). Cada cabeça tem head_dim = d_out // num_heads.
    """

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int,
                 qkv_bias: bool = False):
        super().__init__()
        if d_out % num_heads != 0:
            raise ValueError(f"d_out={d_out} precisa ser divisível por num_heads={num_heads}.")
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)  # mistura as saídas das cabeças
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, num_tokens, _ = x.shape
        if num_tokens > self.mask.shape[0]:
            raise ValueError(f"A entrada tem {num_tokens} tokens, mas esta atenção foi criada com "
                             f"context_length={self.mask.shape[0]}: corte a sequência ou aumente o contexto.")
        # (b, T, d_out) -> (b, T, cabeças, head_dim) -> (b, cabeças, T, head_dim)
        queries = self.W_query(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        keys = self.W_key(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        values = self.W_value(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)

        attn_scores = queries @ keys.transpose(2, 3)               # (b, cabeças, T, T)
        mask_bool = self.mask.bool()[:num_tokens, :num_tokens]
        attn_scores = attn_scores.masked_fill(mask_bool, float("-inf"))
        attn_weights = torch.softmax(attn_scores / self.head_dim ** 0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)

        context = (attn_weights @ values).transpose(1, 2)          # (b, T, cabeças, head_dim)
        context = context.contiguous().view(b, num_tokens, self.d_out)
        return self.out_proj(context)


# %% 03-atencao/notebook.ipynb · célula 76
def attention_weights(mha: MultiHeadAttention, x: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """Pesos de atenção de cada cabeça de `mha` para a entrada x: (lote, cabeças, T, T), sem dropout.

    Refaz as contas do forward até a softmax. Com causal=False, cada token vê a frase inteira (atenção
    bidirecional, a de um codificador como o BERT); com causal=True, só o passado (a do GPT).
    """
    b, num_tokens, _ = x.shape
    queries = mha.W_query(x).view(b, num_tokens, mha.num_heads, mha.head_dim).transpose(1, 2)
    keys = mha.W_key(x).view(b, num_tokens, mha.num_heads, mha.head_dim).transpose(1, 2)
    attn_scores = queries @ keys.transpose(2, 3)                   # (b, cabeças, T, T)
    if causal:
        attn_scores = attn_scores.masked_fill(mha.mask.bool()[:num_tokens, :num_tokens], float("-inf"))
    return torch.softmax(attn_scores / mha.head_dim ** 0.5, dim=-1)


# %% 03-atencao/notebook.ipynb · célula 92
def copy_task_batch(batch_size: int, seq_len: int, vocab_size: int, k: int,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Lote da tarefa "copie o token k posições atrás": (entradas, alvos), ambos (batch_size, seq_len).

    As entradas são tokens sorteados entre 0 e vocab_size - 1; o alvo da posição t é a entrada da posição t - k.
    Nas k primeiras posições não há o que copiar: o alvo é -100, o valor que a entropia cruzada ignora.
    """
    if not 1 <= k < seq_len:
        raise ValueError(f"k={k} precisa estar entre 1 e seq_len - 1 = {seq_len - 1}.")
    inputs = torch.randint(0, vocab_size, (batch_size, seq_len), generator=generator)
    targets = torch.full_like(inputs, -100)
    targets[:, k:] = inputs[:, :-k]
    return inputs, targets


# %% 03-atencao/notebook.ipynb · célula 112
# O que a execução deste capítulo tem de reproduzir (capítulo 00, seção 8). As contas com pesos sorteados são
# exatas; os erros de arredondamento e o treino curto da cópia mudam um pouco de máquina para máquina; tempos não
# se comparam.
ATENCAO_CHECKS = {
    "capitulo": "03-atencao",
    "tolerancias": {"mha_x_pytorch_max_diferenca": 1e-6, "sdpa_max_diferenca": 1e-6, "pena_delta.decodificador": 1e-6,
                    "cossenos_mha": 0.001, "copia_peso_depois": 0.01, "copia_acuracia_depois": 0.01,
                    "copia_perda_final": 0.001, "sdpa_ms": None, "sdpa_vezes_mais_rapida": None},
    "conclusoes": {
        "a softmax de pontuações pequenas achata as diferenças":
            "m('softmax_olhos.olhos') < m('divisao_pela_soma_olhos.olhos')",
        "a nossa atenção é a do PyTorch": "mha_x_pytorch_max_diferenca <= 1e-5",
        "com a máscara causal o passado fica intocado; sem ela, não":
            "causal_max_diferenca == 0 < sem_mascara_max_diferenca",
        "a atenção treinada aprende a copiar, partindo do acaso":
            "copia_acuracia_antes < 2 * copia_acaso and copia_acuracia_depois > 0.95 and copia_peso_depois > 0.9",
        "no decodificador, a pista que vem depois não muda o vetor de \"pena\"":
            "m('pena_delta.decodificador') < 1e-5 < m('pena_delta.codificador')",
    },
}
