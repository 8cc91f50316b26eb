"""Capítulo 04-gpt: o código que o capítulo ensina e os seguintes reutilizam.

ARQUIVO GERADO por `python ferramentas/exportar.py` a partir das células `# exportar` de
`04-gpt/notebook.ipynb`. Não edite à mão: mude o notebook e gere de novo.
"""
import math

import torch
from torch import nn

from llm_do_zero.atencao import MultiHeadAttention


# %% 04-gpt/notebook.ipynb · célula 8
GPT_CONFIG_124M = {
    "vocab_size": 50257,     # tamanho do vocabulário BPE do GPT-2
    "context_length": 1024,  # quantos tokens o modelo enxerga de uma vez
    "emb_dim": 768,          # dimensão dos vetores
    "n_heads": 12,           # cabeças de atenção
    "n_layers": 12,          # blocos transformer
    "drop_rate": 0.1,        # taxa de dropout
    "qkv_bias": False,       # viés nas projeções Q, K, V
}


# %% 04-gpt/notebook.ipynb · célula 19
class LayerNorm(nn.Module):
    """Normaliza cada vetor para média 0 e variância 1, depois aplica escala e deslocamento aprendidos."""

    def __init__(self, emb_dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        media = x.mean(dim=-1, keepdim=True)
        variancia = x.var(dim=-1, keepdim=True, unbiased=False)
        return self.scale * (x - media) / torch.sqrt(variancia + self.eps) + self.shift


# %% 04-gpt/notebook.ipynb · célula 23
class GELU(nn.Module):
    """GELU na aproximação por tanh usada pelo GPT-2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1 + torch.tanh((2.0 / torch.pi) ** 0.5 * (x + 0.044715 * x ** 3)))


# %% 04-gpt/notebook.ipynb · célula 28
class FeedForward(nn.Module):
    """Duas camadas lineares com GELU no meio; a camada escondida é 4x mais larga."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(cfg["emb_dim"], 4 * cfg["emb_dim"]),
            GELU(),
            nn.Linear(4 * cfg["emb_dim"], cfg["emb_dim"]),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


# %% 04-gpt/notebook.ipynb · célula 37
class TransformerBlock(nn.Module):
    """Atenção e feed-forward, cada um com pré-normalização, dropout e atalho (conexão residual)."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.att = MultiHeadAttention(d_in=cfg["emb_dim"], d_out=cfg["emb_dim"],
                                      context_length=cfg["context_length"], dropout=cfg["drop_rate"],
                                      num_heads=cfg["n_heads"], qkv_bias=cfg["qkv_bias"])
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg["emb_dim"])
        self.norm2 = LayerNorm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_shortcut(self.att(self.norm1(x)))   # atenção + atalho
        x = x + self.drop_shortcut(self.ff(self.norm2(x)))    # feed-forward + atalho
        return x


# %% 04-gpt/notebook.ipynb · célula 40
class GPTModel(nn.Module):
    """O GPT: embeddings de token e posição, n_layers blocos transformer, norma final e cabeça de saída.

    Entrada: ids (lote, T) com T <= context_length. Saída: logits (lote, T, vocab_size).
    """

    def __init__(self, cfg: dict):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, in_idx: torch.Tensor) -> torch.Tensor:
        _, seq_len = in_idx.shape
        if seq_len > self.pos_emb.num_embeddings:   # só há embeddings de posição para context_length posições
            raise IndexError(f"A entrada tem {seq_len} tokens, mas o modelo aceita no máximo "
                             f"context_length={self.pos_emb.num_embeddings}: use só os últimos tokens, "
                             f"por exemplo idx[:, -{self.pos_emb.num_embeddings}:].")
        tok_embeds = self.tok_emb(in_idx)
        pos_embeds = self.pos_emb(torch.arange(seq_len, device=in_idx.device))
        x = self.drop_emb(tok_embeds + pos_embeds)
        x = self.trf_blocks(x)
        x = self.final_norm(x)
        return self.out_head(x)  # logits: (lote, posições, vocab_size)


# %% 04-gpt/notebook.ipynb · célula 54
def generate_text_simple(model: nn.Module, idx: torch.Tensor, max_new_tokens: int, context_size: int) -> torch.Tensor:
    """Geração gulosa (greedy): a cada passo, acrescenta o token mais provável.

    idx: ids (lote, T) do começo do texto. Devolve (lote, T + max_new_tokens).
    """
    if idx.dim() != 2 or idx.shape[1] == 0:
        raise ValueError(f"idx precisa ter formato (lote, T) com T >= 1; veio {tuple(idx.shape)}. "
                         "Use text_to_token_ids(texto, tokenizer) para montar a entrada.")
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]          # só o que cabe no contexto
        with torch.no_grad():
            logits = model(idx_cond)[:, -1, :]     # (lote, vocab_size): só a última posição
        idx_next = torch.argmax(logits, dim=-1, keepdim=True)
        idx = torch.cat((idx, idx_next), dim=1)
    return idx


def text_to_token_ids(text: str, tokenizer) -> torch.Tensor:
    """Texto -> tensor (1, n) de ids, pronto para o modelo."""
    encoded = tokenizer.encode(text, allowed_special={"<|endoftext|>"})
    if not encoded:
        raise ValueError("O texto está vazio: o modelo precisa de pelo menos um token para continuar.")
    return torch.tensor(encoded).unsqueeze(0)


def token_ids_to_text(token_ids: torch.Tensor, tokenizer) -> str:
    """Tensor (1, n) ou (n,) de ids -> texto."""
    return tokenizer.decode(token_ids.squeeze(0).tolist())


# %% 04-gpt/notebook.ipynb · célula 61
# Buffers (não pesos) que alguns arquivos do GPT-2 trazem: a máscara causal guardada em cada bloco.
GPT2_BUFFERS = (".attn.bias", ".attn.masked_bias")


def load_weights_into_gpt(gpt: "GPTModel", state_dict: dict) -> "GPTModel":
    """Copia os pesos de um GPT-2 no formato Hugging Face (`wte.weight`, `h.0.attn.c_attn.weight`, ...) para o GPTModel.

    Aceita chaves com ou sem o prefixo `transformer.`. As camadas Conv1D do GPT-2 guardam os pesos transpostos
    em relação a nn.Linear; a projeção QKV vem fundida e é dividida em três. A cabeça de saída reutiliza `wte`
    (pesos amarrados). O modelo precisa de `qkv_bias=True`. A cópia é estrita: falta uma chave -> KeyError; sobra
    uma chave que não é peso do GPTModel (fora a cópia `lm_head.weight` e os buffers GPT2_BUFFERS) -> ValueError.
    """
    sd = {k.removeprefix("transformer."): v for k, v in state_dict.items()}
    usadas = set()

    def pegar(chave: str) -> torch.Tensor:
        if chave not in sd:
            raise KeyError(f"O state dict do GPT-2 não tem a chave {chave!r}: é mesmo um checkpoint do GPT-2?")
        usadas.add(chave)
        return sd[chave]

    def copiar(destino: torch.Tensor, origem: torch.Tensor, chave: str) -> None:
        if destino.shape != origem.shape:
            raise ValueError(f"Formato incompatível em {chave!r}: o checkpoint tem {tuple(origem.shape)}, "
                             f"o modelo espera {tuple(destino.shape)}. Confira a configuração (emb_dim, "
                             f"n_layers, context_length, vocab_size, qkv_bias=True).")
        with torch.no_grad():
            destino.copy_(origem)

    n_camadas_ckpt = len({k.split(".")[1] for k in sd if k.startswith("h.")})
    if n_camadas_ckpt != len(gpt.trf_blocks):
        raise ValueError(f"O checkpoint tem {n_camadas_ckpt} blocos e o modelo {len(gpt.trf_blocks)} (n_layers).")
    if gpt.trf_blocks[0].att.W_query.bias is None:
        raise ValueError("Os pesos do GPT-2 têm viés em Q, K, V: crie o modelo com qkv_bias=True.")

    copiar(gpt.tok_emb.weight, pegar("wte.weight"), "wte.weight")
    copiar(gpt.pos_emb.weight, pegar("wpe.weight"), "wpe.weight")
    for i, bloco in enumerate(gpt.trf_blocks):
        p = f"h.{i}."
        q_w, k_w, v_w = pegar(p + "attn.c_attn.weight").chunk(3, dim=-1)   # (d, 3d) -> 3 x (d, d)
        q_b, k_b, v_b = pegar(p + "attn.c_attn.bias").chunk(3, dim=-1)
        copiar(bloco.att.W_query.weight, q_w.T, p + "attn.c_attn.weight (Q)")
        copiar(bloco.att.W_key.weight, k_w.T, p + "attn.c_attn.weight (K)")
        copiar(bloco.att.W_value.weight, v_w.T, p + "attn.c_attn.weight (V)")
        copiar(bloco.att.W_query.bias, q_b, p + "attn.c_attn.bias (Q)")
        copiar(bloco.att.W_key.bias, k_b, p + "attn.c_attn.bias (K)")
        copiar(bloco.att.W_value.bias, v_b, p + "attn.c_attn.bias (V)")
        copiar(bloco.att.out_proj.weight, pegar(p + "attn.c_proj.weight").T, p + "attn.c_proj.weight")
        copiar(bloco.att.out_proj.bias, pegar(p + "attn.c_proj.bias"), p + "attn.c_proj.bias")
        copiar(bloco.ff.layers[0].weight, pegar(p + "mlp.c_fc.weight").T, p + "mlp.c_fc.weight")
        copiar(bloco.ff.layers[0].bias, pegar(p + "mlp.c_fc.bias"), p + "mlp.c_fc.bias")
        copiar(bloco.ff.layers[2].weight, pegar(p + "mlp.c_proj.weight").T, p + "mlp.c_proj.weight")
        copiar(bloco.ff.layers[2].bias, pegar(p + "mlp.c_proj.bias"), p + "mlp.c_proj.bias")
        copiar(bloco.norm1.scale, pegar(p + "ln_1.weight"), p + "ln_1.weight")
        copiar(bloco.norm1.shift, pegar(p + "ln_1.bias"), p + "ln_1.bias")
        copiar(bloco.norm2.scale, pegar(p + "ln_2.weight"), p + "ln_2.weight")
        copiar(bloco.norm2.shift, pegar(p + "ln_2.bias"), p + "ln_2.bias")
    copiar(gpt.final_norm.scale, pegar("ln_f.weight"), "ln_f.weight")
    copiar(gpt.final_norm.shift, pegar("ln_f.bias"), "ln_f.bias")
    copiar(gpt.out_head.weight, pegar("wte.weight"), "wte.weight (cabeça de saída amarrada)")
    sobrando = sorted(k for k in sd if k not in usadas and k != "lm_head.weight" and not k.endswith(GPT2_BUFFERS))
    if sobrando:
        raise ValueError(f"O state dict tem {len(sobrando)} chave(s) que o GPTModel não usa ({', '.join(sobrando[:4])}"
                         f"{' …' if len(sobrando) > 4 else ''}): é de outra arquitetura ou de outro tamanho?")
    return gpt


# %% 04-gpt/notebook.ipynb · célula 77
def init_gpt2_weights(model: "GPTModel", std: float = 0.02, scale_residual: bool = True) -> "GPTModel":
    """Aplica a inicialização do GPT-2 a um GPTModel (no lugar) e devolve o próprio modelo.

    Pesos de nn.Linear e nn.Embedding ~ N(0, std), vieses 0, LayerNorms com escala 1 e deslocamento 0. Com
    scale_residual=True, as projeções que somam no fluxo residual (att.out_proj e ff.layers[2]) usam
    std / sqrt(2 · n_layers).
    """
    n_layers = len(model.trf_blocks)
    with torch.no_grad():
        for modulo in model.modules():
            if isinstance(modulo, (nn.Linear, nn.Embedding)):
                nn.init.normal_(modulo.weight, mean=0.0, std=std)
            if isinstance(modulo, nn.Linear) and modulo.bias is not None:
                nn.init.zeros_(modulo.bias)
            if isinstance(modulo, LayerNorm):
                nn.init.ones_(modulo.scale)
                nn.init.zeros_(modulo.shift)
        if scale_residual:
            for bloco in model.trf_blocks:
                for projecao in (bloco.att.out_proj, bloco.ff.layers[2]):
                    nn.init.normal_(projecao.weight, mean=0.0, std=std / math.sqrt(2 * n_layers))
    return model


# %% 04-gpt/notebook.ipynb · célula 83
class RMSNorm(nn.Module):
    """Divide cada vetor pela raiz da média dos seus quadrados (RMS) e aplica uma escala aprendida; sem deslocamento."""

    def __init__(self, emb_dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return self.scale * x / rms


# %% 04-gpt/notebook.ipynb · célula 86
class SwiGLU(nn.Module):
    """Feed-forward com porta dos modelos modernos: fc3(SiLU(fc1(x)) * fc2(x)), sem vieses."""

    def __init__(self, emb_dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(emb_dim, hidden_dim, bias=False)   # ramo da porta (passa pela SiLU)
        self.fc2 = nn.Linear(emb_dim, hidden_dim, bias=False)   # ramo linear
        self.fc3 = nn.Linear(hidden_dim, emb_dim, bias=False)   # volta para emb_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(nn.functional.silu(self.fc1(x)) * self.fc2(x))


# %% 04-gpt/notebook.ipynb · célula 89
def rope_angles(head_dim: int, context_length: int, theta_base: float = 10_000.0) -> torch.Tensor:
    """Ângulos da RoPE, (context_length, head_dim // 2): o ângulo p · θ_i do par i na posição p.

    θ_i = theta_base ** (-2i / head_dim).
    """
    if head_dim % 2:
        raise ValueError(f"A RoPE gira pares de dimensões: head_dim={head_dim} precisa ser par.")
    theta = theta_base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    posicoes = torch.arange(context_length, dtype=torch.float32)
    return torch.outer(posicoes, theta)


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Gira cada par (x_2i, x_2i+1) de x, (..., T, head_dim), pelo ângulo angles[t, i] da sua posição t.

    angles: (T, head_dim // 2) — rope_angles(...)[:T], ou as linhas das posições que se quer.
    """
    esperado = (x.shape[-2], x.shape[-1] // 2)
    if x.shape[-1] % 2 or tuple(angles.shape) != esperado:
        raise ValueError(f"Para x com formato {tuple(x.shape)}, angles precisa ter formato {esperado} "
                         f"(e head_dim precisa ser par); veio {tuple(angles.shape)}.")
    cos, sin = angles.cos(), angles.sin()
    pares, impares = x[..., 0::2], x[..., 1::2]
    girado = torch.stack((pares * cos - impares * sin, pares * sin + impares * cos), dim=-1)
    return girado.flatten(-2)


# %% 04-gpt/notebook.ipynb · célula 95
class GroupedQueryAttention(nn.Module):
    """Atenção causal com consultas agrupadas (GQA): num_heads cabeças de consulta, num_kv_groups pares K, V.

    num_kv_groups = num_heads é a atenção multicabeça comum; num_kv_groups = 1, a multi-query attention.
    Entrada (lote, T, d_in) -> saída (lote, T, d_out).
    """

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int,
                 num_kv_groups: int, qkv_bias: bool = False):
        super().__init__()
        if d_out % num_heads or num_heads % num_kv_groups:
            raise ValueError(f"d_out={d_out} precisa ser divisível por num_heads={num_heads}, e num_heads por "
                             f"num_kv_groups={num_kv_groups}.")
        self.d_out = d_out
        self.num_heads = num_heads
        self.num_kv_groups = num_kv_groups
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, num_kv_groups * self.head_dim, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, num_kv_groups * self.head_dim, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, num_tokens, _ = x.shape
        if num_tokens > self.mask.shape[0]:
            raise ValueError(f"A entrada tem {num_tokens} tokens, mas esta atenção foi criada com "
                             f"context_length={self.mask.shape[0]}.")
        queries = self.W_query(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        keys = self.W_key(x).view(b, num_tokens, self.num_kv_groups, self.head_dim).transpose(1, 2)
        values = self.W_value(x).view(b, num_tokens, self.num_kv_groups, self.head_dim).transpose(1, 2)
        por_grupo = self.num_heads // self.num_kv_groups         # cabeças de consulta que usam cada par K, V
        keys = keys.repeat_interleave(por_grupo, dim=1)          # (b, grupos, T, hd) -> (b, cabeças, T, hd)
        values = values.repeat_interleave(por_grupo, dim=1)

        attn_scores = queries @ keys.transpose(2, 3)             # (b, cabeças, T, T)
        mask_bool = self.mask.bool()[:num_tokens, :num_tokens]
        attn_scores = attn_scores.masked_fill(mask_bool, float("-inf"))
        attn_weights = self.dropout(torch.softmax(attn_scores / self.head_dim ** 0.5, dim=-1))
        context = (attn_weights @ values).transpose(1, 2).contiguous().view(b, num_tokens, self.d_out)
        return self.out_proj(context)


# %% 04-gpt/notebook.ipynb · célula 117
# O que a execução deste capítulo tem de reproduzir (capítulo 00, seção 8). Contagens e contas com pesos sorteados
# são exatas; a velocidade depende da máquina e não se compara.
GPT_CHECKS = {
    "capitulo": "04-gpt",
    "tolerancias": {"forward_ms": None, "tokens_por_s": None, "gflops_por_s": None, "gradiente_por_camada": (0, 0.1),
                    "razao_20_camadas": (0, 0.2)},
    "conclusoes": {
        "a cabeça separada soma exatamente vocab × emb_dim":
            "parametros_gptmodel - parametros_amarrado == parametros_cabeca",
        "quase metade dos parâmetros está nas tabelas de vocabulário":
            "0.4 < m('fatia_parametros.vocabulario') < 0.5",
        "sem atalhos o gradiente da primeira camada some":
            "m('gradiente_por_camada.sem_atalhos.0') < 1e-3 * m('gradiente_por_camada.sem_atalhos.7')",
        "a receita do GPT-2 começa mais perto do chute uniforme":
            "abs(m('perda_inicial.gpt2.0') - ln_vocab) < abs(m('perda_inicial.pytorch.0') - ln_vocab)",
        "com a escala residual, o desvio da esteira não depende da profundidade":
            "abs(m('desvio_no_fundo.48_com_escala') - m('desvio_no_fundo.12_com_escala')) < 0.01",
    },
}
